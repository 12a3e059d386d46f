"""SSIM between the Grad-CAM heatmaps of congenetic detectors (RQ3, Figure 3, Finding 3).

A congenetic group is the three detectors that share an architecture and a training set (original,
transfer, merge). For each test set, each image gets the mean SSIM over the group's detector pairs
(3 detectors -> 3 pairs); the shares of images with SSIM < 0.7, 0.7-0.9 and >= 0.9 make one histogram.

SSIM is ``skimage.metrics.structural_similarity`` with skimage's defaults otherwise (7x7 uniform window),
in the space each Grad-CAM variant calls for (``dfstudy.gradcam.SSIM_SPACE``): ``"map"`` compares the
[0, 1] grey maps (``data_range=1.0``); ``"jet"`` compares their JET renderings as RGB uint8 images
(``data_range=255``, the mean over the three channels), as the study's ``count_SSIM.py`` did with
``multichannel=True`` on the JET images its Grad-CAM script had written.

Command lines::

    # one group, its test sets (each --dataset followed by its --heatmaps): per-image SSIM
    python -m dfstudy.similarity compare --group CELEB/MesoNet \
        --dataset FS --heatmaps results/gradcam/CELEB/MesoNet/{original,transfer,merge}/heatmap/FS.npz \
        --dataset NT --heatmaps results/gradcam/CELEB/MesoNet/{original,transfer,merge}/heatmap/NT.npz \
        --out results/gradcam/ssim/heatmap/CELEB_MesoNet.csv
    # all per-image files: one RQ3 table per variant and the Finding 3 verdicts
    python -m dfstudy.similarity summarize --inputs results/gradcam/ssim/*/*.csv \
        --variants study_code heatmap --study "$STUDY_JSON" \
        --tables results/tables/rq3_ssim_study_code.csv results/tables/rq3_ssim_heatmap.csv \
        --findings results/tables/findings_rq3.json

Per-image CSV columns: ``variant, trainset, arch, dataset, image_id, ssim`` (group mean) and one
``ssim_<a>_<b>`` per detector pair (a, b = strategies). Table columns: ``trainset, arch, dataset, n,
share_lt07, share_07_09, share_ge09, mean_ssim``, rows in the order of the study
(:class:`dfstudy.study.Study`; ``--study``, the paper's by default): training sets, architectures, then the
group's own test set and the unseen sets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity

from dfstudy.cli import run_subcommands
from dfstudy.study import PAPER, Study, add_argument

log = logging.getLogger(__name__)

LOW, HIGH = 0.7, 0.9  # the study's thresholds: < 0.7 dissimilar, >= 0.9 similar
BINS = ("lt07", "07_09", "ge09")
BIN_LABELS = {"lt07": "SSIM < 0.7", "07_09": "0.7 ≤ SSIM < 0.9", "ge09": "SSIM ≥ 0.9"}
CLAIM = "Congenetic detectors' heatmaps are dissimilar (mostly SSIM < 0.7)."


def _as_unit_float(maps):
    maps = np.asarray(maps)
    if maps.dtype == np.uint8:  # stored form written by dfstudy.gradcam
        return maps.astype(np.float32) / 255
    return maps.astype(np.float32, copy=False)


def pairwise_ssim(maps_a, maps_b, space="map") -> np.ndarray:
    """SSIM of each image's two heatmaps.

    Parameters
    ----------
    maps_a, maps_b : array (N, H, W)
        Heatmaps in [0, 1] (float) or as stored grey levels (uint8, read as level / 255; coloured as they
        are for "jet"), same image order.
    space : {"map", "jet"}
        "map": SSIM of the grey maps, ``data_range=1.0``. "jet": SSIM of their JET renderings (RGB uint8,
        ``data_range=255``, channels averaged by skimage).

    Returns
    -------
    np.ndarray
        float64 (N,).
    """
    a, b = np.asarray(maps_a), np.asarray(maps_b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"need two (N, H, W) arrays of one shape, got {a.shape} and {b.shape}")
    if space == "map":
        a, b = _as_unit_float(a), _as_unit_float(b)
        return np.array([structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b)], np.float64)
    if space == "jet":
        from dfstudy.gradcam import colorize

        return np.array(
            [
                structural_similarity(colorize(x), colorize(y), data_range=255, channel_axis=-1)
                for x, y in zip(a, b)
            ],
            np.float64,
        )
    raise ValueError(f"space must be 'map' or 'jet', not {space!r}")


def pair_ssims(maps_by_detector: dict, space="map") -> dict:
    """SSIM per image for every pair of detectors: ``{(name_a, name_b): (N,)}``, pairs in key order."""
    if len(maps_by_detector) < 2:
        raise ValueError(f"a group needs at least two detectors, got {list(maps_by_detector)}")
    return {
        (a, b): pairwise_ssim(maps_by_detector[a], maps_by_detector[b], space)
        for a, b in itertools.combinations(maps_by_detector, 2)
    }


def group_ssim(maps_by_detector: dict, space="map") -> np.ndarray:
    """Mean SSIM over a group's detector pairs, per image.

    Parameters
    ----------
    maps_by_detector : dict
        Detector name -> heatmaps (N, H, W), all in the same image order.
    space : {"map", "jet"}
        See :func:`pairwise_ssim`.

    Returns
    -------
    np.ndarray
        float64 (N,): for 3 detectors, the mean of 3 pairwise SSIMs.
    """
    return np.mean(list(pair_ssims(maps_by_detector, space).values()), axis=0)


def ssim_bins(values) -> dict:
    """Counts and shares of SSIM values in the study's three bins.

    Bins: ``lt07`` = [-1, 0.7), ``07_09`` = [0.7, 0.9), ``ge09`` = [0.9, 1]; counts add up to n.

    Returns
    -------
    dict
        ``n``, ``count_<bin>`` and ``share_<bin>`` (0..1; NaN when n = 0) for each bin.
    """
    values = np.asarray(values, np.float64).ravel()
    if np.isnan(values).any():
        raise ValueError("SSIM values contain NaN")
    n = len(values)
    counts = {
        "lt07": int((values < LOW).sum()),
        "07_09": int(((values >= LOW) & (values < HIGH)).sum()),
        "ge09": int((values >= HIGH).sum()),
    }
    out = {"n": n}
    out.update({f"count_{k}": v for k, v in counts.items()})
    out.update({f"share_{k}": (v / n if n else float("nan")) for k, v in counts.items()})
    return out


def load_heatmaps(path) -> dict:
    """Read a ``dfstudy.gradcam`` output: ``image_ids``, ``maps`` (as stored: uint8 grey levels or float16)
    and its labels (``detector``, ``dataset``, ``layer``, ``variant``)."""
    with np.load(path, allow_pickle=False) as z:
        out = {"image_ids": z["image_ids"].astype(str), "maps": z["heatmaps"]}
        for key in ("detector", "dataset", "layer", "variant"):
            out[key] = str(z[key]) if key in z.files else ""
    return out


def dataset_order(dataset, trainset, study: Study = PAPER):
    """Sort key: a group's own test set first, then the study's unseen sets (the paper: FS, NT, DF, DFD),
    then anything else by name."""
    if dataset == trainset:
        return (0, "")
    if dataset in study.unseen:
        return (1 + study.unseen.index(dataset), "")
    return (len(study.unseen) + 1, dataset)


def _sort_table(table, study: Study):
    trainsets, archs = list(study.trainsets), list(study.architectures)
    key = [
        (*study.rank([r.trainset], trainsets), r.trainset, *study.rank([r.arch], archs), r.arch,
         dataset_order(r.dataset, r.trainset, study))
        for r in table.itertuples(index=False)
    ]
    return table.iloc[sorted(range(len(table)), key=key.__getitem__)].reset_index(drop=True)


def summarize(per_image: pd.DataFrame, study: Study = PAPER) -> pd.DataFrame:
    """The RQ3 table: one row per (trainset, arch, dataset) with the bin shares and the mean SSIM.

    Parameters
    ----------
    per_image : DataFrame
        Columns ``trainset, arch, dataset, ssim`` (the per-image CSVs, concatenated).
    study : Study
        The order of the rows: the study's training sets and architectures, then per group its original
        test set first and the unseen sets in the study's order (the paper: FS, NT, DF, DFD).

    Returns
    -------
    DataFrame
        ``trainset, arch, dataset, n, share_lt07, share_07_09, share_ge09, mean_ssim``.
    """
    rows = []
    for (trainset, arch, dataset), cell in per_image.groupby(["trainset", "arch", "dataset"], sort=False):
        bins = ssim_bins(cell["ssim"].to_numpy())
        rows.append(
            {"trainset": trainset, "arch": arch, "dataset": dataset, "n": bins["n"]}
            | {f"share_{b}": bins[f"share_{b}"] for b in BINS}
            | {"mean_ssim": float(cell["ssim"].mean())}
        )
    columns = ["trainset", "arch", "dataset", "n"] + [f"share_{b}" for b in BINS] + ["mean_ssim"]
    table = pd.DataFrame(rows, columns=columns)
    return _sort_table(table, study) if len(table) else table


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def finding3(table: pd.DataFrame) -> dict:
    """Whether the data support Finding 3, with the numbers behind the verdict.

    Rule: supported when more than half of all image-level group SSIMs, pooled over every group and test
    set in ``table`` (each weighted by its n), are below 0.7. Also reported: in how many (group, test set)
    cells the majority is below 0.7, and the pooled shares on the original and the unseen test sets.
    """
    out = {"finding": 3, "claim": CLAIM, "rule": (
        "supported when more than half of all image-level group SSIMs (mean over the group's detector pairs), "
        "pooled over all groups and test sets, are below 0.7"
    )}
    table = table[table["n"] > 0]
    if table.empty:
        sentence = f'Finding 3 ("{CLAIM[:-1]}") could not be checked: no SSIM data.'
        return out | {"verdict": "no data", "sentence": sentence}

    def pooled(rows):
        n = rows["n"].sum()
        return {b: float((rows["n"] * rows[f"share_{b}"]).sum() / n) if n else float("nan") for b in BINS}

    shares = pooled(table)
    original = table[table["dataset"] == table["trainset"]]
    unseen = table[table["dataset"] != table["trainset"]]
    n_images = int(table["n"].sum())
    groups = table[["trainset", "arch"]].drop_duplicates()
    majority = int((table["share_lt07"] > 0.5).sum())
    mean_ssim = float((table["n"] * table["mean_ssim"]).sum() / n_images)
    verdict = "supported" if shares["lt07"] > 0.5 else "not supported"
    claim = f'Finding 3 ("{CLAIM[:-1]}")'
    sentence = (
        f"{claim} is {verdict} by our data: {100 * shares['lt07']:.1f} % of {n_images:,} image-level group "
        f"SSIMs ({_plural(len(groups), 'group')}, {_plural(len(table), 'group-test set cell')}) are below "
        f"0.7, {100 * shares['07_09']:.1f} % between 0.7 and 0.9 and {100 * shares['ge09']:.1f} % at least "
        f"0.9 (mean SSIM {mean_ssim:.2f}); the majority is below 0.7 in {majority} of {len(table)} cells."
    )
    return out | {
        "verdict": verdict,
        "sentence": sentence,
        "n_images": n_images,
        "n_groups": len(groups),
        "n_cells": len(table),
        "cells_majority_lt07": majority,
        "mean_ssim": mean_ssim,
        **{f"share_{b}": shares[b] for b in BINS},
        "share_lt07_original": pooled(original)["lt07"] if len(original) else None,
        "share_lt07_unseen": pooled(unseen)["lt07"] if len(unseen) else None,
    }


def _aligned(loaded):
    """Heatmaps of all detectors on the image ids they share, in the first file's order."""
    ids = loaded[0]["image_ids"]
    common = set(ids).intersection(*(set(d["image_ids"]) for d in loaded[1:]))
    if any(len(d["image_ids"]) != len(common) for d in loaded):
        log.warning("heatmap files cover different images; using the %d they share", len(common))
    if not common:
        raise ValueError("the heatmap files share no image id")
    keep = [i for i in ids if i in common]
    maps = []
    for d in loaded:
        pos = {image_id: k for k, image_id in enumerate(d["image_ids"])}
        maps.append(d["maps"][[pos[i] for i in keep]])
    return np.array(keep), maps


def _detector_names(loaded, paths):
    # "CELEB/MesoNet/original" -> "original"; fall back to the folder holding the file
    names = [d["detector"].split("/")[-1] if d["detector"] else Path(p).parent.name for d, p in zip(loaded, paths)]
    if len(set(names)) != len(names):
        names = [f"{n}{i}" for i, n in enumerate(names)]
    return names


def finding3_variants(tables: dict) -> dict:
    """Finding 3 under each Grad-CAM variant and whether the verdict depends on the variant.

    Parameters
    ----------
    tables : dict
        Variant name -> :func:`summarize` table, the primary variant (the one the verdict reports) first.

    Returns
    -------
    dict
        The primary variant's :func:`finding3` fields, plus ``variants`` (variant -> its :func:`finding3`),
        ``primary``, ``robust`` (True when every variant gives the same verdict) and ``robustness`` (one
        sentence); ``sentence`` ends with the robustness sentence.
    """
    if not tables:
        raise ValueError("no variant tables")
    per_variant = {v: finding3(t) for v, t in tables.items()}
    primary = next(iter(per_variant))
    verdicts = {v: f["verdict"] for v, f in per_variant.items()}
    robust = len(set(verdicts.values())) == 1
    detail = "; ".join(
        f"{v}: {f['verdict']}" + (f" ({100 * f['share_lt07']:.1f} % below 0.7)" if "share_lt07" in f else "")
        for v, f in per_variant.items()
    )
    if len(per_variant) == 1:
        robustness = f"Only the {primary} variant was computed, so robustness to the Grad-CAM variant is untested."
    elif robust:
        robustness = f"The verdict holds under every Grad-CAM variant ({detail})."
    else:
        robustness = f"The verdict depends on the Grad-CAM variant ({detail})."
    out = dict(per_variant[primary])
    out.update(primary=primary, variants=per_variant, robust=robust, robustness=robustness,
               sentence=f"[{primary}] {per_variant[primary]['sentence']} {robustness}")
    return out


def compute_main(argv=None):
    p = argparse.ArgumentParser(prog="python -m dfstudy.similarity compare", description="per-image group SSIM")
    p.add_argument("--group", required=True, help="trainset/arch, e.g. CELEB/MesoNet")
    p.add_argument("--dataset", action="append", required=True,
                   help="test set name, e.g. FS; repeat, each followed by its --heatmaps")
    p.add_argument("--heatmaps", nargs="+", action="append", required=True,
                   help="dfstudy.gradcam .npz files of the group on the --dataset before")
    p.add_argument("--out", required=True, help="per-image CSV")
    p.add_argument("--space", choices=("map", "jet"), default=None,
                   help="default: the one the files' Grad-CAM variant calls for (dfstudy.gradcam.SSIM_SPACE)")
    args = p.parse_args(argv)
    if len(args.dataset) != len(args.heatmaps):
        raise SystemExit(f"{len(args.dataset)} --dataset but {len(args.heatmaps)} --heatmaps")
    frame = pd.concat([_group_ssim(args.group, dataset, paths, args.space)
                       for dataset, paths in zip(args.dataset, args.heatmaps)], ignore_index=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)


def _group_ssim(group, dataset, paths, space=None):
    """Per-image SSIM of one group's heatmaps on one test set."""
    from dfstudy.gradcam import SSIM_SPACE

    trainset, arch = group.split("/")
    loaded = [load_heatmaps(path) for path in paths]
    variants = {d["variant"] or "heatmap" for d in loaded}  # files without the field predate the variants
    if len(variants) != 1:
        raise SystemExit(f"the heatmap files mix Grad-CAM variants: {sorted(variants)}")
    variant = variants.pop()
    space = space or SSIM_SPACE[variant]
    image_ids, maps = _aligned(loaded)
    names = _detector_names(loaded, paths)
    pairs = pair_ssims(dict(zip(names, maps)), space)
    frame = pd.DataFrame(
        {"variant": variant, "trainset": trainset, "arch": arch, "dataset": dataset, "image_id": image_ids,
         "ssim": np.mean(list(pairs.values()), axis=0)}
        | {f"ssim_{a}_{b}": v for (a, b), v in pairs.items()}
    )
    log.info("%s %s (%s, SSIM on %s): %d images, %s", group, dataset, variant, space, len(frame),
             ssim_bins(frame["ssim"]))
    return frame


def summarize_main(argv=None):
    p = argparse.ArgumentParser(prog="python -m dfstudy.similarity summarize",
                                description="RQ3 tables (one per Grad-CAM variant) + Finding 3")
    p.add_argument("--inputs", nargs="+", required=True, help="per-image CSVs")
    p.add_argument("--variants", nargs="+", default=["heatmap"],
                   help="Grad-CAM variants, the primary one first; paired in order with --tables")
    p.add_argument("--tables", nargs="+", required=True, help="output CSVs, e.g. results/tables/rq3_ssim_heatmap.csv")
    p.add_argument("--findings", required=True, help="output JSON, e.g. results/tables/findings_rq3.json")
    add_argument(p)
    args = p.parse_args(argv)
    if len(args.variants) != len(args.tables):
        raise SystemExit(f"{len(args.variants)} --variants but {len(args.tables)} --tables")
    per_image = pd.concat([pd.read_csv(f, dtype={"image_id": str}) for f in args.inputs], ignore_index=True)
    if "variant" not in per_image:
        per_image["variant"] = "heatmap"
    tables = {}
    for variant, path in zip(args.variants, args.tables):
        tables[variant] = summarize(per_image[per_image["variant"] == variant], args.study)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tables[variant].to_csv(path, index=False, float_format="%.4f")
    finding = finding3_variants(tables)
    Path(args.findings).parent.mkdir(parents=True, exist_ok=True)
    Path(args.findings).write_text(json.dumps(finding, indent=2) + "\n")
    log.info("%s", finding["sentence"])


def main(argv=None):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    run_subcommands("python -m dfstudy.similarity", "SSIM of congenetic Grad-CAM heatmaps (RQ3)",
                    {"compare": ("per-image SSIM of one group's heatmaps on its test sets", compute_main),
                     "summarize": ("RQ3 tables (one per Grad-CAM variant) and Finding 3", summarize_main)}, argv)


if __name__ == "__main__":
    main()
