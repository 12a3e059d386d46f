"""Where a finished run spent its time and memory: per stage, from the rules' benchmark files.

    .venv/bin/python bench/run_stages.py [--results results]

Every rule writes ``results/benchmarks/<rule>/<wildcards>.tsv`` (Snakemake's ``benchmark:``: wall seconds,
peak resident memory, CPU time). Printed: one row per stage (jobs, job seconds summed, the longest job,
peak memory of any job), the run's wall span (first job start to last job end, from the benchmark files'
times), the size of ``results/`` and, per trained detector, its time and how many of its epochs came after
the best one (from the model cards), which the study keeps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def benchmarks(results: Path) -> pd.DataFrame:
    """One row per job: rule, job (its wildcards as a path), seconds, max_rss_mb, cpu_s, start, end."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        b = pd.read_csv(tsv, sep="\t").iloc[-1]  # a rerun appends nothing: Snakemake rewrites the file
        end = tsv.stat().st_mtime
        rows.append({"rule": rule, "job": str(tsv.relative_to(results / "benchmarks" / rule).with_suffix("")),
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


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="the run's results folder")
    args = p.parse_args(argv)
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
    trained = detectors(args.results, jobs)
    if len(trained):
        print("\n" + trained.round(3).to_markdown(index=False))
        total = trained["seconds"].sum()
        after = (trained["seconds"] * trained["after_best"]).sum()
        print(f"\ntraining: {total / 60:.1f} min of job time; epochs after the best one: {after / 60:.1f} min "
              f"({100 * after / total:.0f} %, assuming equal epochs)")


if __name__ == "__main__":
    main()
