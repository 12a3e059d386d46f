"""Beyond the study: one table, one figure and one sentence comparing every detector family.

A *family* is an architecture under one strategy (``MesoNet / transfer``), pooled over the training sets
(the paper: the detectors trained on CELEB and on F2F). Each family gets, from the per-image predictions
the tables read (``results/predictions/{trainset}/{arch}/{strategy}/{dataset}.parquet``):

* ``original_accuracy``: accuracy (%) on the detectors' own test sets, mean over the training sets;
* ``unseen_accuracy``: mean accuracy (%) over every (training set, unseen set) pair; the ranking measure;
* ``degradation``: original - unseen accuracy (points), as in Table V;
* ``frame_auc``: mean image-level AUC on the unseen sets;
* ``video_auc_vote`` and ``video_auc_mean``: mean video-level AUC on the unseen sets, a video scored by the
  share of its frames called fake (seed 001's rule: a video is fake when more than half its frames are, i.e.
  when that share exceeds 0.5) or by its mean frame score (the study's ``dfstudy predict``);
* ``cv_ap``: the Coefficient of Variation of AP across the unseen sets (seed 000's ranking measure),
  :func:`dfstudy.tables.cv_ap`'s number per detector, averaged over the family's detectors (pooling the
  APs of both training sets instead would count the difference between training sets as variation
  across test sets);

each with a percentile bootstrap interval from :func:`dfstudy.metrics.bootstrap_ci` (videos resampled
within each label). The seed of a test set's resample is derived from the config's seed and the test set's
name only, so every detector's predictions on one test set are resampled with the same videos: the
replicates of one family are averaged over test sets and training sets replicate by replicate, and two
families are compared on the same resampled data.

``approach`` says where a family comes from: ``the study`` for the study's architectures under its three
strategies, otherwise the ``reference`` of the architecture's registry record and/or the strategy's entry
in :data:`dfstudy.study.STRATEGY_REFERENCES`.

Ranking: by ``unseen_accuracy``, highest first; ties (equal to 9 decimals) go to the smaller degradation,
then to the family name. ``overlaps_best`` marks the families whose interval reaches the best family's
lower bound; the best family's lead is *clear* when no other family's does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy.metrics import bootstrap_ci, is_fake
from dfstudy.models import registry
from dfstudy.study import PAPER, STRATEGIES, STRATEGY_REFERENCES, Study, add_argument

log = logging.getLogger(__name__)

__all__ = ["METRICS", "approach", "video_scores", "compare_families", "rank_families", "sentence",
           "plot_comparison", "main"]

# column -> (bootstrap metric, video score or None for frames, test sets); the order of the table
METRICS = {
    "original_accuracy": ("accuracy", None, "original"),
    "unseen_accuracy": ("accuracy", None, "unseen"),
    "frame_auc": ("auc", None, "unseen"),
    "video_auc_vote": ("auc", "vote", "unseen"),
    "video_auc_mean": ("auc", "mean", "unseen"),
    "ap": ("ap", None, "unseen"),
}
COLUMNS = ["original_accuracy", "unseen_accuracy", "degradation", "frame_auc", "video_auc_vote",
           "video_auc_mean", "cv_ap"]
THE_STUDY = "the study"
# Float noise must not break a tie in the ranking.
_CLEAN_DECIMALS = 9


def approach(arch: str, strategy: str) -> str:
    """Where the family ``(arch, strategy)`` comes from: ``"the study"`` (its five architectures under its
    three strategies) or what lies beyond it: the registry's reference of the architecture (a plugin's name
    where it has none) and the strategy's."""
    parts = []
    if arch not in PAPER.architectures:
        known = arch in registry.names() and registry.get(arch).reference
        parts.append(registry.get(arch).reference if known else f"{arch} (beyond the study)")
    if strategy not in STRATEGIES:
        parts.append(STRATEGY_REFERENCES.get(strategy, f"{strategy} (strategy beyond the study)"))
    return " + ".join(parts) or THE_STUDY


def video_scores(pred: pd.DataFrame, score: str) -> pd.DataFrame:
    """One row per video: ``video_id, label, score``.

    ``score="mean"``: the mean frame score; ``"vote"``: the share of frames called fake
    (:func:`dfstudy.metrics.is_fake`), so a video scored above 0.5 is fake by majority vote.
    """
    frames = pred.assign(score=is_fake(pred["score"]).astype(float)) if score == "vote" else pred
    return frames.groupby("video_id", sort=True).agg(label=("label", "first"), score=("score", "mean")) \
        .reset_index()


def _dataset_seed(seed: int, dataset: str) -> int:
    """The bootstrap seed of one test set: the same for every detector's predictions on it (paired)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(dataset.encode())]).generate_state(1)[0])


def _file_replicates(pred: pd.DataFrame, metric: str, score: str | None, n_boot: int, seed: int):
    data = pred if score is None else video_scores(pred, score)
    r = bootstrap_ci(data, metric, n_boot, seed, by="video_id", replicates=True)
    return r["estimate"], r["replicates"]


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    valid = reps[np.isfinite(reps)]
    if not valid.size:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(valid, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def compare_families(predictions: dict[tuple[str, str, str, str], pd.DataFrame], n_boot: int, seed: int,
                     level: float = 0.95, study: Study = PAPER) -> pd.DataFrame:
    """One row per detector family with every measure and its bootstrap interval, ranked.

    Parameters
    ----------
    predictions : dict
        ``(trainset, arch, strategy, dataset) -> DataFrame`` of ``video_id, label, score`` (one row per
        image); test sets other than the detector's own and the study's unseen sets are ignored.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Base seed (the config's); see the module docstring for how each test set's seed derives from it.
    level : float
        Interval coverage.
    study : Study
        Names the training sets and the unseen sets.

    Returns
    -------
    DataFrame
        ``rank, family, architecture, strategy, approach, trainsets, n_detectors, n_unseen`` and for each of
        :data:`COLUMNS` the estimate, ``<column>_lo`` and ``<column>_hi``, then ``overlaps_best``; sorted by
        rank (see :func:`rank_families`).
    """
    # (arch, strategy) -> trainset -> column -> list of (estimate, replicates) over that column's test sets
    found: dict = {}
    for (trainset, arch, strategy, dataset), pred in predictions.items():
        role = "original" if dataset == trainset else "unseen" if dataset in study.unseen else None
        if role is None:
            continue
        cols = found.setdefault((arch, strategy), {}).setdefault(trainset, {})
        for column, (metric, score, sets) in METRICS.items():
            if sets == role:
                cols.setdefault(column, []).append(
                    _file_replicates(pred, metric, score, n_boot, _dataset_seed(seed, dataset)))
    rows = []
    for (arch, strategy), by_trainset in found.items():
        est: dict[str, list] = {}
        rep: dict[str, list] = {}
        for trainset, cols in by_trainset.items():
            for column in ("original_accuracy", "unseen_accuracy", "frame_auc", "video_auc_vote", "video_auc_mean"):
                pairs = cols.get(column, [])
                est.setdefault(column, []).extend(e for e, _ in pairs)
                rep.setdefault(column, []).extend(r for _, r in pairs)
            # CoV of AP: one value per detector across its unseen sets (population std, as tables.cv_ap)
            aps = cols.get("ap", [])
            if len(aps) >= 1:
                e = np.array([a for a, _ in aps])
                r = np.vstack([b for _, b in aps])
                with np.errstate(invalid="ignore", divide="ignore"):
                    est.setdefault("cv_ap", []).append(float(e.std() / e.mean()))
                    rep.setdefault("cv_ap", []).append(r.std(axis=0) / r.mean(axis=0))
        point = {c: float(np.mean(v)) if len(v) else math.nan for c, v in est.items()}
        reps = {c: np.vstack(v).mean(axis=0) if len(v) else np.full(n_boot, np.nan) for c, v in rep.items()}
        for c in COLUMNS:
            point.setdefault(c, math.nan)
            reps.setdefault(c, np.full(n_boot, np.nan))
        point["degradation"] = point["original_accuracy"] - point["unseen_accuracy"]
        reps["degradation"] = reps["original_accuracy"] - reps["unseen_accuracy"]
        row = dict(family=f"{arch} / {strategy}", architecture=arch, strategy=strategy,
                   approach=approach(arch, strategy),
                   trainsets="+".join(t for t in study.trainsets if t in by_trainset),
                   n_detectors=len(by_trainset),
                   n_unseen=len({d for t, a, s, d in predictions if (a, s) == (arch, strategy) and d in study.unseen}))
        for c in COLUMNS:
            row[c] = point[c]
            row[f"{c}_lo"], row[f"{c}_hi"] = _interval(reps[c], level)
        rows.append(row)
    return rank_families(pd.DataFrame(rows, columns=_output_columns()[1:-1]))


def _output_columns() -> list[str]:
    return ["rank", "family", "architecture", "strategy", "approach", "trainsets", "n_detectors", "n_unseen",
            *(x for c in COLUMNS for x in (c, f"{c}_lo", f"{c}_hi")), "overlaps_best"]


def rank_families(table: pd.DataFrame) -> pd.DataFrame:
    """Rank by unseen accuracy (highest first; ties: smaller degradation, then family name) and mark the
    families whose interval reaches the best one's lower bound (``overlaps_best``; the best itself too)."""
    if table.empty:
        return pd.DataFrame(columns=_output_columns())
    key = pd.DataFrame({"u": -table["unseen_accuracy"].round(_CLEAN_DECIMALS),
                        "d": table["degradation"].round(_CLEAN_DECIMALS), "f": table["family"]})
    out = table.loc[key.sort_values(["u", "d", "f"], na_position="last", kind="stable").index].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    best_lo = out["unseen_accuracy_lo"].iloc[0]
    out["overlaps_best"] = (out["unseen_accuracy_hi"] >= best_lo) | (out["rank"] == 1)
    return out[_output_columns()]


def sentence(table: pd.DataFrame, study: Study = PAPER, level: float = 0.95) -> dict:
    """Which approach generalises best on this data, in one sentence, with the numbers it rests on.

    Returns
    -------
    dict
        ``sentence``, ``best`` (the first row as a dict), ``clear`` (no other family's interval reaches the
        best one's lower bound), ``overlapping`` (the other families whose interval does), ``approaches``
        (the best family of each approach, in rank order).
    """
    if table.empty or not np.isfinite(table["unseen_accuracy"].iloc[0]):
        return dict(sentence="No family has predictions on the unseen sets: nothing to compare.", best=None,
                    clear=None, overlapping=[], approaches=[])
    best = table.iloc[0]
    others = table.iloc[1:]
    overlapping = list(others.loc[others["overlaps_best"].astype(bool), "family"])
    clear = not overlapping
    pct = f"{100 * level:g} %"
    approach = "the study's own (its architectures and strategies)" if best.approach == THE_STUDY else best.approach
    text = (f"On this data the approach that generalises best is {approach}: {best.family} reaches "
            f"{best.unseen_accuracy:.2f} % mean accuracy on the unseen sets {', '.join(study.unseen)} "
            f"({pct} video-bootstrap interval {best.unseen_accuracy_lo:.2f}–{best.unseen_accuracy_hi:.2f}), "
            f"against {best.original_accuracy:.2f} % on its own test sets (degradation "
            f"{best.degradation:.2f} points), pooled over {best.n_detectors} detector(s) ({best.trainsets}).")
    if not len(others):
        text += " It is the only family, so there is no lead to judge."
    elif clear:
        runner = others.iloc[0]
        text += (f" Its lead is clear of the intervals: no other family's interval reaches its lower bound "
                 f"(runner-up {runner.family}, {runner.unseen_accuracy:.2f} %, up to "
                 f"{runner.unseen_accuracy_hi:.2f} %).")
    else:
        text += (f" Its lead is not clear of the intervals: {len(overlapping)} of the {len(others)} other "
                 f"families overlap it ({', '.join(overlapping[:3])}{', …' if len(overlapping) > 3 else ''}).")
    firsts = table.drop_duplicates("approach")
    approaches = [dict(approach=r.approach, family=r.family, unseen_accuracy=float(r.unseen_accuracy),
                       rank=int(r.rank)) for r in firsts.itertuples()]
    if len(approaches) > 1:
        text += " Best of each approach: " + "; ".join(
            f"{a['approach']}, {a['family']} ({a['unseen_accuracy']:.2f} %, rank {a['rank']})" for a in approaches) + "."
    return dict(sentence=text, best=best.to_dict(), clear=clear if len(others) else None,
                overlapping=overlapping, approaches=approaches)


def plot_comparison(table: pd.DataFrame, path: str | Path, level: float = 0.95) -> None:
    """Families in rank order (best on top): mean unseen accuracy with its interval, coloured by approach,
    beside the original accuracy (grey cross); the figure grows with the number of families."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = max(len(table), 1)
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.32 * n))
    approaches = list(dict.fromkeys(table["approach"]))
    colours = dict(zip(approaches, sns.color_palette("colorblind", max(len(approaches), 1))))
    y = np.arange(len(table))
    for a in approaches:
        m = (table["approach"] == a).to_numpy()
        t = table[m]
        err = np.vstack([t.unseen_accuracy - t.unseen_accuracy_lo, t.unseen_accuracy_hi - t.unseen_accuracy])
        ax.errorbar(t.unseen_accuracy, y[m], xerr=np.clip(np.nan_to_num(err), 0, None), fmt="o", ms=5,
                    capsize=2.5, color=colours[a], label=f"unseen, {a}")
    ax.scatter(table["original_accuracy"], y, marker="x", color="0.45", zorder=3, label="original test sets")
    ax.set_yticks(y, [f"{r}. {f}" for r, f in zip(table["rank"], table["family"])], fontsize=8.5)
    ax.invert_yaxis()
    ax.axvline(50, color="0.8", lw=0.8, ls="--", zorder=0)
    ax.set_xlabel(f"accuracy (%); bars: {100 * level:g} % video-bootstrap interval of the unseen accuracy")
    ax.set_title("Beyond the study: detector families ranked by mean accuracy on unseen sets", fontsize=10)
    ax.grid(axis="x", color="0.92")
    ax.legend(fontsize=7.5, loc="lower left", bbox_to_anchor=(0, 1.04 + 0.25 / n), ncol=2, frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.comparison", description=__doc__.splitlines()[0])
    p.add_argument("--predictions", nargs="+", required=True,
                   help="prediction files .../{trainset}/{arch}/{strategy}/{dataset}.parquet; only these are read")
    p.add_argument("--csv", required=True, help="the ranked table (comparison.csv); a .md twin is written beside it")
    p.add_argument("--json", required=True, help="the sentence and the ranking (comparison.json)")
    p.add_argument("--figure", required=True, help="comparison.png")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--level", type=float, default=0.95, help="bootstrap interval coverage")
    p.add_argument("--log-level", default="INFO")
    add_argument(p)
    return p


def main(argv=None) -> None:
    from dfstudy.tables import _jsonable, prediction_table, to_markdown

    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    files = prediction_table(args.predictions, args.study)
    predictions = {(r.trainset, r.arch, r.strategy, r.dataset):
                   pd.read_parquet(r.path, columns=["video_id", "label", "score"])
                   for r in files.itertuples() if r.dataset == r.trainset or r.dataset in args.study.unseen}
    log.info("%d prediction files on own and unseen test sets", len(predictions))
    table = compare_families(predictions, args.n_boot, args.seed, args.level, args.study)
    summary = sentence(table, args.study, args.level)
    csv = Path(args.csv)
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False, float_format="%.4f")
    csv.with_suffix(".md").write_text("# Beyond the study: detector families ranked by mean unseen accuracy\n\n"
                                      f"{summary['sentence']}\n\n{to_markdown(table)}\n")
    ranking = table[["rank", "family", "approach", "unseen_accuracy", "unseen_accuracy_lo", "unseen_accuracy_hi",
                     "overlaps_best"]].to_dict("records")
    Path(args.json).write_text(json.dumps(_jsonable(dict(summary, ranking=ranking, level=args.level,
                                                         n_boot=args.n_boot)), indent=2) + "\n")
    plot_comparison(table, args.figure, args.level)
    log.info("%s", summary["sentence"])


if __name__ == "__main__":
    main()
