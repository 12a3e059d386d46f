"""Leave-one-out over the FF++ manipulation methods: parts, their audit, and the table (beyond the study).

The study trains on one method and tests on others; seed paper 002 measures generalisation the other
way round: for each of the four FaceForensics++ methods, a detector learns real faces and the fakes of
the other three, and is tested on the one it never saw. This module draws that protocol's parts from
one source's face manifest (config block ``loo``), audits them, and tabulates the detectors' results.
Nothing here is the study's; the report must say so.

Parts, per held-out method (``results/loo/splits/<heldout>/<part>.csv``, packed by ``splits.pack``):

- ``train``, ``val``: ``loo.train`` / ``loo.val`` images from the official FF++ train / val videos,
  half real, half fake; the fakes come from the three other methods in equal shares (within one image).
- ``test``: ``loo.test`` images from the official test videos, half real, half fakes of the held-out method.
- ``seen``: the same real images as ``test`` and as many fakes of the three training methods (equal
  shares, test videos only): the detector's accuracy on what it has seen, for comparison.

Reals (and each method's fakes) are drawn in a seeded order that does not depend on the held-out
method, so the four detectors of an architecture share their real training images. A part smaller than
configured stops the run (``ShortSplitError``) naming the key that fixes it. :func:`audit` then checks
that no fake of the held-out method reaches train or val, and that no test video, and no identity of a
test video where identities are known, is in train or val (``LeakageError`` otherwise).

Table (``results/tables/loo.csv``, ``.md``), one row per (held-out method, architecture) and a row
``heldout = "mean"`` per architecture (means of the rows above it; no intervals):

``heldout``, ``architecture``
    the method left out of training; the registered architecture.
``accuracy``, ``accuracy_lo``, ``accuracy_hi``
    percent of ``test`` images classified correctly (fake when P(fake) > 0.5), with its percentile
    bootstrap interval (videos resampled, stratified by label; ``evaluation.bootstrap`` replicates).
``frame_auc``, ``frame_auc_lo``, ``frame_auc_hi``
    ROC AUC over the test images, with its video-bootstrap interval.
``video_accuracy``, ``video_auc``, ``video_auc_lo``, ``video_auc_hi``
    per test video: a video is fake when more than half its frames are (seed paper 001's rule); its
    score for the AUC is the share of its frames called fake. Interval: videos resampled.
``seen_accuracy``, ``seen_accuracy_lo``, ``seen_accuracy_hi``
    percent of ``seen`` images classified correctly.
``drop``
    ``seen_accuracy - accuracy`` (points): what leaving the method out costs.
``images``, ``videos``
    test images and test videos behind each row.

``results/tables/loo.json`` holds one generated sentence (the hardest held-out method, the mean drop).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy import metrics
from dfstudy.splits import (PART_COLUMNS, TEST_SUPPLY_KEY, TRAINING_SUPPLY_KEY, LeakageError, ShortSplitError,
                            _identity_sets, _rng, _spread, write_parts)
from dfstudy.tables import to_markdown

log = logging.getLogger(__name__)

LOO_PARTS = ("train", "val", "test", "seen")
LOO_COLUMNS = [*PART_COLUMNS, "method"]
# the official FF++ split each part draws its videos from, and the config key that sets its size
PART_SPLIT = {"train": "train", "val": "val", "test": "test", "seen": "test"}
PART_SIZE_KEY = {"train": "loo.train", "val": "loo.val", "test": "loo.test", "seen": "loo.test"}
TABLE_COLUMNS = ["heldout", "architecture", "accuracy", "accuracy_lo", "accuracy_hi", "frame_auc", "frame_auc_lo",
                 "frame_auc_hi", "video_accuracy", "video_auc", "video_auc_lo", "video_auc_hi", "seen_accuracy",
                 "seen_accuracy_lo", "seen_accuracy_hi", "drop", "images", "videos"]


def _shares(n: int, methods: list[str]) -> dict[str, int]:
    """``n`` images over ``methods`` in equal shares; the first ``n % len(methods)`` get one more."""
    base, extra = divmod(n, len(methods))
    return {m: base + (i < extra) for i, m in enumerate(methods)}


def _draw(pool: pd.DataFrame, n: int, seed: int, *keys: str) -> pd.DataFrame:
    return _spread(pool, n, _rng(seed, "loo", *keys))


def _short(heldout: str, part: str, what: str, wanted: int, got: int) -> str:
    supply = TEST_SUPPLY_KEY if PART_SPLIT[part] == "test" else TRAINING_SUPPLY_KEY
    return (f"loo/{heldout}/{part}: {wanted:,} {what} images wanted, {got:,} in the official {PART_SPLIT[part]} "
            f"videos; fix: raise {supply} or lower {PART_SIZE_KEY[part]}")


def heldout_parts(faces: pd.DataFrame, methods: list[str], heldout: str, sizes: dict,
                  seed: int) -> dict[str, pd.DataFrame]:
    """The four parts of one leave-one-out run.

    Parameters
    ----------
    faces : DataFrame
        A face manifest (``status == "ok"`` rows): ``image_id, video_id, identities, label, method,
        official_split, image_path``.
    methods : list of str
        The source's fake methods in the protocol (``loo.methods``); ``heldout`` is one of them.
    heldout : str
        The method that train and val never contain.
    sizes : dict
        ``train``, ``val``, ``test``: images per part, half real, half fake.
    seed : int
        Seed of every draw.

    Returns
    -------
    dict
        ``train``, ``val``, ``test``, ``seen`` -> DataFrame of ``LOO_COLUMNS``, sorted by ``image_id``.

    Raises
    ------
    ShortSplitError
        A part cannot be filled; the message names the part and the config key that fixes it.
    """
    if heldout not in methods:
        raise ValueError(f"loo.methods: held-out method {heldout!r} is not among {methods}")
    seen_methods = [m for m in methods if m != heldout]
    short, parts, reals = [], {}, {}
    for part in LOO_PARTS:
        split = faces[faces["official_split"] == PART_SPLIT[part]]
        n = sizes["test" if part == "seen" else part] // 2
        if part == "seen":
            real = reals["test"]  # the same reals as the held-out test: only the fakes differ
        else:
            pool = split[split["label"] == 0]
            real = reals[part] = _draw(pool, n, seed, part, "real")
            if len(real) < n:
                short.append(_short(heldout, part, "real", n, len(pool)))
        wanted = {heldout: n} if part == "test" else _shares(n, seen_methods)
        fakes = []
        for method, k in wanted.items():
            pool = split[(split["label"] == 1) & (split["method"] == method)]
            fakes.append(_draw(pool, k, seed, PART_SPLIT[part], method))
            if len(fakes[-1]) < k:
                short.append(_short(heldout, part, f"{method} fake", k, len(pool)))
        # dataset: the set the images were drawn for, as the study's parts record it (splits.PART_COLUMNS)
        parts[part] = (pd.concat([real, *fakes]).assign(dataset=f"LOO-{heldout}").sort_values("image_id")
                       .reset_index(drop=True)[LOO_COLUMNS])
    if short:
        raise ShortSplitError("leave-one-out parts fall short of their configured sizes:\n  " + "\n  ".join(short))
    return parts


def make_loo_splits(manifest: pd.DataFrame, methods: list[str], sizes: dict,
                    seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """Every held-out method's parts, and a summary (requested and achieved sizes, fakes per method)."""
    faces = manifest[manifest["status"] == "ok"]
    missing = sorted(set(methods) - set(faces.loc[faces["label"] == 1, "method"]))
    if missing:
        raise ValueError(f"loo.methods: no faces of {missing} in the manifest (methods there: "
                         f"{sorted(set(faces.loc[faces['label'] == 1, 'method']))})")
    parts, rows = {}, []
    for heldout in methods:
        for part, table in heldout_parts(faces, methods, heldout, sizes, seed).items():
            parts[(heldout, part)] = table
            fake_methods = table.loc[table["label"] == 1, "method"].value_counts().sort_index()
            rows.append({"heldout": heldout, "part": part, "requested": sizes["test" if part == "seen" else part],
                         "actual": len(table), "videos": table["video_id"].nunique(), "fake": int(table["label"].sum()),
                         "fake_methods": "; ".join(f"{m} {c}" for m, c in fake_methods.items())})
    return parts, pd.DataFrame(rows)


def audit(parts: dict[tuple[str, str], pd.DataFrame], methods: list[str]) -> pd.DataFrame:
    """Overlap counts between each run's training material (train, val) and its test parts.

    Per held-out method: fakes of that method in train/val; test videos and test identities (where the
    manifest names them) in train/val; val videos in train. Raises LeakageError when any is non-zero.
    """
    rows = []
    for heldout in methods:
        train, val = parts[(heldout, "train")], parts[(heldout, "val")]
        seen = pd.concat([train, val])
        seen_ids = set().union(*_identity_sets(seen["identities"]))
        test = pd.concat([parts[(heldout, "test")], parts[(heldout, "seen")]])
        test_ids = set().union(*_identity_sets(test["identities"]))
        rows.append({
            "heldout": heldout,
            "heldout_fakes_in_training": int(((seen["label"] == 1) & (seen["method"] == heldout)).sum()),
            "test_videos_in_training": len(set(test["video_id"]) & set(seen["video_id"])),
            "test_identities_in_training": len(test_ids & seen_ids),
            "val_videos_in_train": len(set(val["video_id"]) & set(train["video_id"])),
        })
    report = pd.DataFrame(rows)
    report["ok"] = (report.drop(columns="heldout") == 0).all(axis=1)
    bad = report[~report["ok"]]
    if len(bad):
        raise LeakageError("leave-one-out: a held-out fake, test video or test identity reaches training or "
                           "validation:\n" + bad.to_string(index=False))
    return report


def _video_votes(predictions: pd.DataFrame) -> pd.DataFrame:
    """Frames as 0/1 verdicts: a video's mean is then the share of its frames called fake, so
    ``metrics.video_metrics`` calls it fake when more than half its frames are."""
    return predictions.assign(score=metrics.is_fake(predictions["score"]).astype(float))


def heldout_metrics(test: pd.DataFrame, seen: pd.DataFrame, n_boot: int, seed: int, level: float = 0.95) -> dict:
    """One table row's numbers from a detector's predictions on its ``test`` and ``seen`` parts.

    Parameters
    ----------
    test, seen : DataFrame
        Prediction files (``image_id, video_id, label, score``).
    n_boot, seed, level
        Bootstrap replicates (0: no intervals), seed, coverage.

    Returns
    -------
    dict
        The numeric columns of ``TABLE_COLUMNS`` (see the module docstring).
    """
    frame = metrics.frame_metrics(test["label"].to_numpy(), test["score"].to_numpy())
    votes = _video_votes(test)
    video = metrics.video_metrics(votes)
    per_video = votes.groupby("video_id").agg(label=("label", "first"), score=("score", "mean")).reset_index()

    def interval(df, metric, offset, by="video_id"):
        ci = metrics.bootstrap_ci(df, metric, n_boot, seed + offset, by=by, level=level)
        return ci["low"], ci["high"]

    acc_lo, acc_hi = interval(test, "accuracy", 0)
    auc_lo, auc_hi = interval(test, "auc", 1) if np.isfinite(frame["auc"]) else (math.nan, math.nan)
    # one row per video, resampled as they are: the same video bootstrap as the frame intervals
    vauc_lo, vauc_hi = interval(per_video, "auc", 2, by=None) if np.isfinite(video["video_auc"]) else (math.nan,) * 2
    seen_acc = metrics.frame_metrics(seen["label"].to_numpy(), seen["score"].to_numpy())["accuracy"]
    seen_lo, seen_hi = interval(seen, "accuracy", 3)
    return {"accuracy": frame["accuracy"], "accuracy_lo": acc_lo, "accuracy_hi": acc_hi,
            "frame_auc": frame["auc"], "frame_auc_lo": auc_lo, "frame_auc_hi": auc_hi,
            "video_accuracy": video["video_accuracy"], "video_auc": video["video_auc"],
            "video_auc_lo": vauc_lo, "video_auc_hi": vauc_hi,
            "seen_accuracy": seen_acc, "seen_accuracy_lo": seen_lo, "seen_accuracy_hi": seen_hi,
            "drop": seen_acc - frame["accuracy"], "images": len(test), "videos": test["video_id"].nunique()}


def loo_table(predictions: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]], n_boot: int, seed: int,
              level: float = 0.95) -> pd.DataFrame:
    """The leave-one-out table: a row per (held-out method, architecture), then a mean row per architecture.

    ``predictions`` maps ``(heldout, architecture)`` to the detector's (test, seen) prediction tables.
    """
    rows = [{"heldout": h, "architecture": a, **heldout_metrics(test, seen, n_boot, seed, level)}
            for (h, a), (test, seen) in predictions.items()]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    means = table.groupby("architecture", sort=False)[["accuracy", "frame_auc", "video_accuracy", "video_auc",
                                                       "seen_accuracy", "drop", "images", "videos"]].mean()
    means = means.reset_index().assign(heldout="mean")
    return pd.concat([table, means], ignore_index=True)[TABLE_COLUMNS]


def finding(table: pd.DataFrame) -> dict:
    """The table in one sentence: the hardest held-out method and the mean drop from seen to held-out."""
    runs = table[table["heldout"] != "mean"]
    by_method = runs.groupby("heldout")["accuracy"].mean().sort_values()
    hardest, drop = by_method.index[0], float(runs["drop"].mean())
    sentence = (f"Leave-one-out over {len(by_method)} FF++ methods (beyond the study; seed paper 002's protocol), "
                f"{runs['architecture'].nunique()} architecture(s): {hardest} is the hardest method to detect unseen "
                f"(mean accuracy {by_method.iloc[0]:.1f} %), and accuracy on the held-out method lies on average "
                f"{abs(drop):.1f} points {'below' if drop >= 0 else 'above'} accuracy on the {len(by_method) - 1} methods "
                "trained on.")
    return {"sentence": sentence, "hardest": hardest, "hardest_accuracy": float(by_method.iloc[0]),
            "mean_drop": drop, "accuracy_by_heldout": {k: float(v) for k, v in by_method.items()}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.loo", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="draw every held-out method's parts from the source's face manifest")
    make.add_argument("--manifest", required=True, help="results/faces/<loo.source>/manifest.parquet")
    make.add_argument("--config-json", required=True, help="{loo, seed}")
    make.add_argument("--out-dir", required=True)
    check = sub.add_parser("audit", help="fail if a held-out fake or a test video reaches training")
    check.add_argument("--splits-dir", required=True)
    check.add_argument("--config-json", required=True)
    check.add_argument("--out", required=True)
    table = sub.add_parser("table", help="the leave-one-out table from the detectors' predictions")
    table.add_argument("--predictions", nargs="+", required=True,
                       help="HELDOUT/ARCH=<folder holding test.parquet and seen.parquet>")
    table.add_argument("--n-boot", type=int, default=1000)
    table.add_argument("--seed", type=int, default=1234)
    table.add_argument("--out", required=True, help="table .csv; .md and .json are written beside it")
    return p


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "make":
        cfg = json.loads(args.config_json)
        try:
            parts, summary = make_loo_splits(pd.read_parquet(args.manifest), cfg["loo"]["methods"], cfg["loo"],
                                             cfg["seed"])
        except ShortSplitError as err:
            sys.exit(f"ShortSplitError: {err}")
        write_parts(parts, summary, args.out_dir)
    elif args.command == "audit":
        methods = json.loads(args.config_json)["loo"]["methods"]
        parts = {(h, p): pd.read_csv(Path(args.splits_dir) / h / f"{p}.csv", keep_default_na=False)
                 for h in methods for p in LOO_PARTS}
        report = audit(parts, methods)
        report.to_csv(args.out, index=False)
        print(report.to_string(index=False))
    else:
        predictions = {}
        for item in args.predictions:
            key, folder = item.split("=", 1)
            heldout, arch = key.split("/", 1)
            predictions[(heldout, arch)] = tuple(pd.read_parquet(Path(folder) / f"{part}.parquet")
                                                 for part in ("test", "seen"))
        table = loo_table(predictions, args.n_boot, args.seed)
        out = Path(args.out)
        table.to_csv(out, index=False)
        summary = finding(table)
        out.with_suffix(".md").write_text("# Leave-one-out over the FF++ methods (beyond the study)\n\n"
                                          f"{summary['sentence']}\n\n{to_markdown(table)}\n")
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        log.info("%s", summary["sentence"])


if __name__ == "__main__":
    main()
