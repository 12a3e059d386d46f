"""Where a finished run spent its time and memory: per stage, from the rules' benchmark files.

    .venv/bin/python bench/run_stages.py [--workdir .] [--configfile config/paper.yaml ...]

Every rule writes ``results/benchmarks/<rule>/<wildcards>.tsv`` (Snakemake's ``benchmark:``: wall seconds,
peak resident memory, CPU time). Printed: one row per stage (jobs, job seconds summed, the longest job,
peak memory of any job), the run's wall span (first job start to last job end, from the benchmark files'
times), the size of ``results/`` and, per trained detector, its time and how many of its epochs came after
the best one (from the model cards), which the study keeps. With the run's job graph (read from
Snakemake's ``--detailed-summary`` in the run's folder, with the run's config files) it also prints the
critical path: the chain of dependent jobs whose durations add up to the longest time, which no number of
cores can beat.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd


def benchmarks(results: Path) -> pd.DataFrame:
    """One row per job: rule, job (its wildcards as a path), seconds, max_rss_mb, cpu_s, start, end."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks").with_suffix("")
        rule, job = (rel.parts[0], "/".join(rel.parts[1:])) if len(rel.parts) > 1 else (rel.name, ".")
        b = pd.read_csv(tsv, sep="\t").iloc[-1]  # a rerun appends nothing: Snakemake rewrites the file
        end = tsv.stat().st_mtime
        rows.append({"rule": rule, "job": job,
                     "seconds": float(b["s"]), "max_rss_mb": float(pd.to_numeric(b["max_rss"], errors="coerce")),
                     "cpu_s": float(pd.to_numeric(b.get("cpu_time", float("nan")), errors="coerce")),
                     "start": end - float(b["s"]), "end": end})
    return pd.DataFrame(rows)


def stages(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, in the order the run reached it: jobs, summed and longest job seconds, peak memory."""
    table = jobs.groupby("rule").agg(jobs=("job", "size"), job_seconds=("seconds", "sum"),
                                     longest_s=("seconds", "max"), peak_rss_mb=("max_rss_mb", "max"),
                                     first_start=("start", "min"))
    return table.sort_values("first_start").drop(columns="first_start").round(1)


def detectors(results: Path, jobs: pd.DataFrame) -> pd.DataFrame:
    """Per trained detector: seconds, epochs, best epoch, and the share of epochs after the best one."""
    rows = []
    for card_path in sorted((results / "models").glob("*/*/*.json")):
        card = json.loads(card_path.read_text())
        job = "/".join(card_path.with_suffix("").parts[-3:])
        seconds = jobs.loc[(jobs["rule"] == "train_detector") & (jobs["job"] == job), "seconds"]
        run = card.get("epochs_run", card["epochs"])  # fewer where early stopping ended the training
        rows.append({"detector": job, "seconds": float(seconds.iloc[0]) if len(seconds) else float("nan"),
                     "epochs": card["epochs"], "epochs_run": run, "best_epoch": card["best_epoch"],
                     "after_best": (run - card["best_epoch"]) / run,
                     "val_accuracy": card["val_accuracy"], "train_images": card["train_images"]})
    return pd.DataFrame(rows)


def job_graph(workdir: Path, configfiles: list[str]) -> pd.DataFrame:
    """Snakemake's ``--detailed-summary`` of a finished run: per output file, its rule, log and inputs."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(Path(__file__).resolve().parents[1] / "Snakefile"),
           "--directory", str(workdir), "--detailed-summary", "--cores", "1", "--nolock"]
    cmd += ["--configfile", *configfiles] if configfiles else []
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def critical_path(summary: pd.DataFrame, jobs: pd.DataFrame) -> list[tuple[str, float]]:
    """The longest chain of dependent jobs, as (rule/job, seconds); a job is known by its log file, which
    mirrors its benchmark file (results/logs/<rule>/<x>.log, results/benchmarks/<rule>/<x>.tsv)."""
    known = summary[summary["log-file(s)"].str.startswith("results/logs/")]
    job_of = dict(zip(known["output_file"], known["log-file(s)"]))
    needs: dict[str, set] = {}
    for row in known.itertuples():
        inputs = [f for f in getattr(row, "_5").split(",") if f]
        needs.setdefault(row._4, set()).update(job_of[f] for f in inputs if f in job_of)
    seconds = {f"results/logs/{r.rule}/{r.job}.log": r.seconds for r in jobs.itertuples()}
    seconds.update({f"results/logs/{r.rule}.log": r.seconds for r in jobs.itertuples() if r.job == "."})
    longest: dict[str, tuple[float, list]] = {}

    def finish(job):  # memoised longest path ending with `job`
        if job not in longest:
            before = max((finish(d) for d in needs.get(job, ())), default=(0.0, []), key=lambda t: t[0])
            own = seconds.get(job, 0.0)
            longest[job] = (before[0] + own, before[1] + [(job[len("results/logs/"):-len(".log")], own)])
        return longest[job]

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    return max((finish(j) for j in needs), default=(0.0, []), key=lambda t: t[0])[1]


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="the run's folder (holds results/)")
    p.add_argument("--configfile", nargs="*", default=[], help="the run's --configfile arguments, if any")
    args = p.parse_args(argv)
    args.results = args.workdir / "results"
    jobs = benchmarks(args.results)
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {args.results / 'benchmarks'}: has the workflow run?")
    print(stages(jobs).to_markdown())
    print(f"\nwall span: {(jobs['end'].max() - jobs['start'].min()) / 60:.1f} min; "
          f"job seconds: {jobs['seconds'].sum() / 60:.1f} min over {len(jobs)} jobs; "
          f"peak memory of one job: {jobs['max_rss_mb'].max():.0f} MB; results/: {size_mb(args.results):,.0f} MB")
    for part in ("splits", "faces", "models", "corpus"):
        if (args.results / part).is_dir():
            print(f"  results/{part}: {size_mb(args.results / part):,.0f} MB")
    path = critical_path(job_graph(args.workdir, args.configfile), jobs)
    if path:
        print(f"\ncritical path: {sum(s for _, s in path) / 60:.1f} min over {len(path)} jobs")
        for job, seconds in path:
            print(f"  {seconds:8.1f} s  {job}")
    trained = detectors(args.results, jobs)
    if len(trained):
        print("\n" + trained.round(3).to_markdown(index=False))
        total = trained["seconds"].sum()
        after = (trained["seconds"] * trained["after_best"]).sum()
        print(f"\ntraining: {total / 60:.1f} min of job time; epochs after the best one: {after / 60:.1f} min "
              f"({100 * after / total:.0f} %, assuming equal epochs)")


if __name__ == "__main__":
    main()
