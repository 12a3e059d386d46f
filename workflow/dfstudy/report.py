"""The study report: setup, Tables IV-VII next to the published ones, Figures 2, 3 and 5, Findings 1-4
and every deviation from the study's protocol, as one static HTML page and a Markdown twin.

The HTML page is self-contained: inline CSS, no JavaScript, figures embedded as base64 ``data:`` URIs
(downscaled to at most :data:`MAX_WIDTH` pixels), so it reads the same opened from disk, mailed or
archived. The Markdown twin holds the same text and tables and links the figures by relative path; it
is meant for ``git diff`` between runs, which is why neither file carries a timestamp.

Everything shown is read from files the workflow already wrote (tables and findings from
``dfstudy.tables``, ``dfstudy.similarity``, ``dfstudy.causal``; figures; model cards; face manifests; the
split summary; benchmarks). Nothing is recomputed here except counts, so rebuilding the report takes
seconds. The one thing computed from the configuration is the list of deviations: each is a rule in
:data:`PAPER_SCALE` or :data:`DECISIONS` evaluated on the resolved config the rule passes in, so a
paper-scale run lists none of the scale deviations and a demo run lists the demo's actual sizes.

Command line (what rule ``render_report`` runs)::

    python -m dfstudy.report --config-json "$(resolved config as JSON)" \\
        --tables results/tables/table{4,5,6,7}{,_vs_published}.csv results/tables/cv_ap.csv \\
        --findings results/tables/findings{,_rq3,_rq4}.json \\
        --figures results/figures/fig2_heatmaps_CELEB.png ... --manifests results/faces/*/manifest.parquet \\
        --split-summary results/splits/summary.csv --cards results/models/*/*/*.json \\
        --benchmarks results/benchmarks --html results/report/study.html --md results/report/study.md \\
        --sources-csv results/report/sources.csv ...   # and --datasets-csv, --detectors-csv, --deviations-csv
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy.splits import disjoint_level
from dfstudy.tables import TITLES, detector_name

log = logging.getLogger(__name__)

__all__ = [
    "PAPER_SCALE", "DECISIONS", "ReportData", "config_hash", "deviations", "source_summary",
    "dataset_summary", "detector_summary", "benchmark_summary", "environment", "side_by_side",
    "figure_entries", "study_report", "main",
]

TABLES = ("table4", "table5", "table6", "table7")
SPLIT_PARTS = ("train", "val", "test", "finetune", "finetune_val")
SETUP_TABLES = ("sources", "datasets", "detectors", "deviations")  # also written as CSV for Snakemake's report
MAX_WIDTH = 1800  # px; figures are drawn at 300 dpi, more than a screen needs

# --------------------------------------------------------------------------------------------------
# Deviations from the study's protocol, as data
# --------------------------------------------------------------------------------------------------

# The study's numbers (shared/STUDY.md, "Samples", "The 30 detectors", "Analyses"), each with the config
# key that sets it here and, where the effective value is not the key's alone, how to compute it (the
# analyses cannot use more images than a test split holds). A run deviates where the value differs;
# tests check that config/paper.yaml (merged over config.yaml) reproduces every one of them.
PAPER_SCALE = (
    ("preprocess.frames_per_video", 10, "frames per video"),
    ("preprocess.face_size", 256, "face crop and detector input size (px)"),
    ("splits.train", 16000, "training images per original detector"),
    ("splits.finetune_own", 2000, "fine-tuning images from the detector's training set"),
    ("splits.finetune_per_unseen", 1000, "fine-tuning images from each of FS and NT"),
    ("splits.finetune_from", ["FS", "NT"], "unseen sets that feed fine-tuning"),
    ("splits.finetune_val_per_unseen", 1000, "validation images from each of FS and NT added for fine-tuning "
     "(not stated in the study; its code validated fine-tuning on both)"),
    ("splits.val", 2000, "validation images (not stated in the study; our paper-scale choice)"),
    ("splits.test", 2000, "test images per dataset"),
    ("detectors.architectures", ["MesoNet", "MesoInception", "ShallowNet", "XceptionNet", "EfficientNet"],
     "architectures"),
    ("detectors.trainsets", ["CELEB", "F2F"], "training sets"),
    ("detectors.strategies", ["original", "transfer", "merge"], "training strategies"),
    ("detectors.epochs.original", 100, "epochs, original detectors"),
    ("detectors.epochs.finetune", 50, "epochs, transfer and merge fine-tuning"),
    ("detectors.epochs_per_architecture", None, "epochs set per architecture (the study: the same for all)"),
    ("detectors.learning_rate", {"MesoNet": 0.001, "MesoInception": 0.001, "ShallowNet": 0.00005,
                                 "XceptionNet": 0.00005, "EfficientNet": 0.00005}, "Adam learning rates",
     # of the architectures trained: the configs also give rates of architectures they do not train
     lambda c: {a: r for a, r in c["detectors"]["learning_rate"].items() if a in c["detectors"]["architectures"]}),
    ("detectors.batch_size", {"original": 32, "finetune": 64},
     "batch size (not stated in the study; its code: Keras' default 32 from scratch, 64 fine-tuning)"),
    ("detectors.loss", {"MesoNet": "mean_squared_error", "MesoInception": "mean_squared_error"},
     "training loss (not stated in the study; its code: mean squared error for the Meso networks, "
     "binary cross-entropy for the rest)"),
    ("detectors.bn_momentum", None, "BatchNormalization momentum (null: Keras' 0.99, as the study's code)"),
    ("detectors.patience", None, "early stopping: epochs without a better validation accuracy before a "
     "training stops (the study: none, every epoch runs)"),
    ("detectors.recalibrate_bn", False, "BatchNormalization statistics re-estimated with dropout off after "
     "every epoch (the study: no)"),
    ("evaluation.degradation_threshold", 30, "RQ2 degradation threshold (points)"),
    ("gradcam.images", 1000, "RQ3: fake images per test set for the heatmap SSIM (at most the test "
     "set's fakes)", lambda c: min(c["gradcam"]["images"], c["splits"]["test"] // 2)),
    ("causal.architectures", ["MesoNet", "MesoInception", "ShallowNet"], "RQ4: architectures analysed"),
    ("causal.samples", 1920, "RQ4: images per dataset for the causal effects (at most the test set)",
     lambda c: min(c["causal"]["samples"], c["splits"]["test"])),
    ("causal.grid", 4, "RQ4: intervention values per neuron"),
)

# Where the study is silent or ambiguous, what we decided (shared/STUDY.md). Each entry: aspect, what the
# study says, a function of the config giving what this run does (None: the decision does not apply).
DECISIONS = (
    ("data", "real face videos: FaceForensics++ c23, DeepFakeDetection, Celeb-DF v1/v2",
     lambda c: ("embedded synthetic face-video corpus rendered by the workflow (each study dataset gets "
                "its own synthesis artifact), laid out like the real datasets; numbers are not comparable "
                "with the published ones") if c["corpus"]["synthesize"] else None),
    ("compression", "FaceForensics++ / DFD at c23",
     lambda c: ", ".join(f"{s}: {v.get('compression', 'c23')}" for s, v in c["sources"].items()
                         if v["adapter"] in ("faceforensics", "dfd") and v.get("compression", "c23") != "c23")
     or None),
    ("validation set", "not stated",
     lambda c: f"{c['splits']['val']} images from the training set's validation videos (FF++ official "
               f"val pairs; Celeb-DF: {100 * c['splits'].get('val_share', 0.1):g} % of its videos, or of its "
               "people where it is identity-disjoint, held out)"),
    ("faces per training-side video", "10 frames per video",
     lambda c: (f"{c['preprocess']['frames_per_training_video']} evenly spaced frames from each video outside "
                f"the official test split of a source that feeds training, {c['preprocess']['frames_per_video']} "
                "elsewhere: at the real datasets' counts 10 faces per video cannot fill the study's sizes "
                "(FF++ has 720 training originals for 12,000 real training-side images)")
     if c["preprocess"].get("frames_per_training_video") else None),
    ("frames without a face", "replaced by the next frame with a face (the paper does not say how far)",
     lambda c: "the search carries on past the next target frame, so a video yields its full count whenever "
               "enough of its frames hold a face; replacements then sit next to each other"),
    ("which face", "not stated",
     lambda c: "fakes: the face inside the manipulation mask where the dataset ships masks (FF++, DFD); "
               "otherwise, and for reals, the largest face"),
    ("face detection", "face_recognition (dlib HOG + 68 landmarks); sizes not stated",
     lambda c: (f"on a copy downscaled to {c['preprocess'].get('detect_width', 480)} px wide (speed), box "
                f"enlarged {1 + c['preprocess'].get('margin', 0.3):g}x, faces under "
                f"{c['preprocess'].get('min_face', 40)} px skipped")),
    ("BatchNormalization in transfer", "not stated",
     lambda c: "frozen with the other frozen layers (inference mode), as the study's code freezes it"),
    ("Celeb-DF v1 (CELEB-M)", "other videos than CELEB's",
     lambda c: "Celeb-DF v1 re-uses Celeb-DF v2 videos: with a shared identity namespace, a v1 video counts "
               "as the v2 video of the same name; enough shared videos for CELEB-M are reserved (seeded) before "
               "CELEB's parts are drawn, and the audit compares videos across the two sources"
     if any(s.get("role") == "specialised" for s in c["datasets"].values()) else None),
    ("short splits", "every part at its size",
     lambda c: "splits.allow_short is set: parts smaller than configured are used as they are (see the "
               "achieved sizes)" if c["splits"].get("allow_short") else None),
    ("FS-I / NT-I real images", "not stated",
     lambda c: "real frames of the F2F training originals that were not used for training or fine-tuning"),
    ("faceless videos", "not stated",
     lambda c: (f"videos without a detectable face are skipped and listed with the reason; the run stops if "
                f"more than {100 * c['preprocess'].get('max_failed_share', 0.2):g} % of a source fails")),
    ("transfer strategy", "'the last two function layers ... or other parts that contain significant features'",
     lambda c: ("the last two function layers of each architecture are trainable, the rest frozen"
                + ("; overridden for " + ", ".join(c["detectors"]["transfer_layers"])
                   if c["detectors"].get("transfer_layers") else ""))),
    ("backbone initialisation", "not stated",
     lambda c: f"XceptionNet / EfficientNet from {c['detectors'].get('weights') or 'random initialisation'}"),
    ("Grad-CAM", "code: tf-explain explain(class_index=0, no guided gradients) of its sigmoid, which was "
     "P(real) (flow_from_directory's alphabetical classes), blended onto the face (VIRIDIS, weight 0.7), "
     "min-max to uint8, JET; text: Guided Grad-CAM of 'fake', pure heatmaps",
     lambda c: "; ".join(GRADCAM_VARIANT_TEXT[v] for v in _gradcam(c)["variant"])),
    ("Grad-CAM, remaining differences from the code", "one explain() per image on the test folder's files",
     lambda c: ("P(real) is taken as 1 - P(fake) of our detectors (exact: the negated cam); gradients are "
                "computed on batches (equal to float round-off); a constant map gives zeros, where explain() "
                "divides 0 by 0; faces are our aligned uint8 crops, not re-read with cv2.imread and resized; "
                f"{min(_gradcam(c)['images'], c['splits']['test'] // 2)} seeded fakes per test set, where the "
                "code took every fake of the folder that ran without error; the code wrote the JET maps with "
                "cv2.imwrite under the frame's file name (lossy if those were JPEG, which the release does not "
                "say) and compared the re-read files; we compare the images in memory")
     if "study_code" in _gradcam(c)["variant"] else None),
    ("Grad-CAM faithfulness", "not tested",
     lambda c: (f"deletion test (an addition): top {100 * _gradcam(c)['faithfulness']['fraction']:g} % of each "
                f"map occluded vs. the same mask at a random place, {_gradcam(c)['faithfulness']['images']} "
                "images per detector, test set and variant") if _gradcam(c)["faithfulness"]["images"] else None),
    ("causal effect", "paper: expected correctness under intervention; code: spread of the mean output",
     lambda c: {"spread": "spread (max - min) of the mean output over the intervention grid, as the study's code",
                "correctness": "expected correctness under intervention, as the paper's text"}
     [c["causal"].get("measure", "spread")]),
    ("causal intervention grid", "code: linspace over min(observed min, 1) .. max(observed max, 0), the range "
     "taken from other batches of the same shuffled test folder than the effect is averaged over",
     lambda c: {"observed": "linspace over each neuron's observed min .. max on the very samples the effect is "
                            "averaged over, unclipped",
                "study_code": "as the code: range from a second seeded draw of as many images of the same test "
                              "set, clipped to at most 1 (low end) and at least 0 (high end)"}
     [c["causal"].get("grid_range", "observed")]),
    ("causal samples", "code: 30 batches of 64 from a shuffled flow_from_directory generator (1,920 images, "
     "drawn with repeats across epochs; its output was P(real))",
     lambda c: "a seeded balanced draw without repeats (half real, half fake); P(fake) output, whose spread "
               "equals that of P(real)"),
    ("Finding 4 reading", "text: some neurons are top contributors on all five datasets (Figure 5: 'all "
     "five' the most frequent count)",
     lambda c: "both readings reported: lenient (every detector has a neuron top-1/16 on all five datasets) "
               "and the paper's ('all five' the most frequent count), each against a baseline that shuffles "
               f"each dataset's ranking ({c['causal'].get('permutations', 1000)} permutations)"),
    ("uncertainty", "none reported",
     lambda c: (f"{c['evaluation'].get('bootstrap', 1000)} video-bootstrap resamples give 95 % intervals "
                "for every accuracy (an addition)") if c["evaluation"].get("bootstrap", 0) else None),
    ("labels", "real / fake", lambda c: "1 = fake, 0 = real throughout"),
)


def _gradcam(config: dict) -> dict:
    """The gradcam section with the schema's defaults (a partial config may lack it)."""
    g = config.get("gradcam", {})
    deletion = {"images": 100, "fraction": 0.1, **g.get("faithfulness", {})}
    return {"images": 1000, "variant": ["study_code", "heatmap"], **g, "faithfulness": deletion}


GRADCAM_VARIANT_TEXT = {
    "study_code": "study_code: the code's computation (P(real), VIRIDIS overlay, min-max, JET, multichannel SSIM)",
    "heatmap": "heatmap: pure min-max map of P(fake) without the face, SSIM on the grey map (no overlay, "
               "no JET, the other class)",
    "guided": "guided: the text's Guided Grad-CAM of 'fake' (rectified cam x guided backpropagation, the "
              "largest absolute value over colour channels), SSIM on the JET rendering",
}


def _get(config: dict, dotted: str):
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _show(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "none"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_show(x)}" for k, x in v.items())
    return "—" if v is None else str(v)


# The study's size of each part, from its splits.* values above (val and finetune_val: our reading of its code)
_STUDY = {key: value for key, value, *_ in PAPER_SCALE}
STUDY_PART_SIZES = {
    "train": _STUDY["splits.train"], "val": _STUDY["splits.val"], "test": _STUDY["splits.test"],
    "finetune": _STUDY["splits.finetune_own"]
    + _STUDY["splits.finetune_per_unseen"] * len(_STUDY["splits.finetune_from"]),
    "finetune_val": _STUDY["splits.val"]
    + _STUDY["splits.finetune_val_per_unseen"] * len(_STUDY["splits.finetune_from"]),
}


def achieved_deviations(splits: pd.DataFrame) -> list[dict]:
    """One row per split part whose achieved size differs from the study's (``results/splits/summary.csv``)."""
    rows = []
    made = splits[splits["dataset"].fillna("") != ""] if "dataset" in splits else splits.iloc[0:0]
    for r in made.itertuples():
        study = STUDY_PART_SIZES.get(r.part)
        if study is None or int(r.actual) == study:
            continue
        asked = "" if int(r.actual) == int(r.requested) else f" of {int(r.requested):,} configured"
        rows.append(dict(kind="achieved", aspect=f"{r.dataset}/{r.part} images", config="splits", study=f"{study:,}",
                         here=f"{int(r.actual):,}{asked}", ratio=int(r.actual) / study))
    return rows


def deviations(config: dict, splits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every way this run departs from the study's protocol, from the resolved config and, where given,
    the sizes the splits achieved.

    Returns
    -------
    DataFrame
        ``kind`` (data / achieved / scale / decision), ``aspect``, ``config`` (key), ``study``, ``here``,
        ``ratio`` (here / study for numbers, else NaN). Scale rows appear only where the config differs
        from the study; achieved rows where a part's size differs from the study's, whatever the config
        asked; decisions where they apply to this run.
    """
    rows = [] if splits is None else achieved_deviations(splits)
    for key, study, what, *effective in PAPER_SCALE:
        try:
            here = effective[0](config) if effective else _get(config, key)
        except (KeyError, TypeError):  # a partial config: judge the key alone
            here = _get(config, key)
        if here is None or _same(here, study):
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (here, study))
        ratio = here / study if numbers else np.nan
        rows.append(dict(kind="scale", aspect=what, config=key, study=_show(study), here=_show(here),
                         ratio=ratio))
    for aspect, study, rule in DECISIONS:
        here = rule(config)
        if here:
            kind = "data" if aspect in ("data", "compression") else "decision"
            rows.append(dict(kind=kind, aspect=aspect, config="", study=study, here=here, ratio=np.nan))
    order = {"data": 0, "achieved": 1, "scale": 2, "decision": 3}
    out = pd.DataFrame(rows, columns=["kind", "aspect", "config", "study", "here", "ratio"])
    return out.sort_values("kind", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Setup: data, detectors, machine
# --------------------------------------------------------------------------------------------------


def _whole_video_skips(m: pd.DataFrame) -> pd.DataFrame:
    return m[(m["status"] != "ok") & (m["frame"] == -1)]


def source_summary(manifests: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per source: videos indexed, videos with faces, face images, skipped videos (with reasons), frames.

    Parameters
    ----------
    manifests : dict
        Source name -> face manifest (``video_id, label, method, frame, status, reason``).
    """
    rows = []
    for source, m in manifests.items():
        ok = m[m["status"] == "ok"]
        skipped = _whole_video_skips(m).drop_duplicates("video_id")
        reasons = skipped["reason"].fillna("").replace("", "unknown").value_counts()
        rows.append(dict(source=source, videos=int(m["video_id"].nunique()),
                         videos_with_faces=int(ok["video_id"].nunique()), face_images=int(len(ok)),
                         skipped_videos=int(len(skipped)),
                         skip_reasons="; ".join(f"{r}: {n}" for r, n in reasons.items()) or "—",
                         skipped_frames=int(((m["status"] != "ok") & (m["frame"] != -1)).sum())))
    return pd.DataFrame(rows, columns=["source", "videos", "videos_with_faces", "face_images",
                                       "skipped_videos", "skip_reasons", "skipped_frames"])


def dataset_summary(datasets: dict, manifests: dict[str, pd.DataFrame], splits: pd.DataFrame) -> pd.DataFrame:
    """Per study dataset: its videos and faces (real of its source + fakes of its method) and split sizes.

    Parameters
    ----------
    datasets : dict
        ``config["datasets"]`` (name -> source, method, role).
    manifests : dict
        Source name -> face manifest.
    splits : DataFrame
        ``results/splits/summary.csv`` (dataset, part, requested, actual, videos, fake).

    Returns
    -------
    DataFrame
        ``dataset, role, source, method, disjoint, real_videos, fake_videos, face_images, skipped_videos``
        and, per split part present, ``{part}`` as "images (videos)", or "achieved of requested images
        (videos)" where the pool was too small for the configured size, followed by the study's size
        where the achieved one differs.
    """
    rows = []
    parts = [p for p in SPLIT_PARTS if p in set(splits.get("part", []))]
    for name, spec in datasets.items():
        row = dict(dataset=name, role=spec["role"], source=spec["source"], method=spec["method"],
                   disjoint=disjoint_level(spec))
        m = manifests.get(spec["source"])
        if m is not None:
            mine = m[(m["label"] == 0) | (m["method"] == spec["method"])]
            ok = mine[mine["status"] == "ok"]
            row.update(real_videos=int(ok.loc[ok["label"] == 0, "video_id"].nunique()),
                       fake_videos=int(ok.loc[ok["label"] == 1, "video_id"].nunique()),
                       face_images=int(len(ok)),
                       skipped_videos=int(_whole_video_skips(mine)["video_id"].nunique()))
        for p in parts:
            s = splits[(splits["dataset"] == name) & (splits["part"] == p)]
            if len(s):
                r = s.iloc[0]
                vids = f" ({int(r['videos'])} videos)" if pd.notna(r.get("videos")) else ""
                got, asked, study = int(r["actual"]), int(r["requested"]), STUDY_PART_SIZES[p]
                row[p] = (f"{got:,}" if got == asked else f"{got:,} of {asked:,}") + vids + (
                    "" if got == study else f"; study {study:,}")
        rows.append(row)
    cols = ["dataset", "role", "source", "method", "disjoint", "real_videos", "fake_videos", "face_images",
            "skipped_videos", *parts]
    return pd.DataFrame(rows).reindex(columns=cols)


def split_notes(splits: pd.DataFrame) -> list[str]:
    """Videos the splitter dropped (summary rows without a dataset), as sentences."""
    notes = splits[splits["dataset"].fillna("") == ""] if "dataset" in splits else splits.iloc[0:0]
    return [f"{r.part}: {int(r.actual)} videos dropped" for r in notes.itertuples()]


def detector_summary(cards: list[dict]) -> pd.DataFrame:
    """One row per model card (``results/models/{trainset}/{arch}/{strategy}.json``), in study order."""
    rows = []
    for c in cards:
        try:
            name = detector_name(c["architecture"], c["trainset"], c["strategy"])
        except (KeyError, ValueError):
            name = "/".join(str(c.get(k, "?")) for k in ("trainset", "architecture", "strategy"))
        val = c.get("val_accuracy")
        rows.append(dict(detector=name, architecture=c.get("architecture"), trainset=c.get("trainset"),
                         strategy=c.get("strategy"), trainable_params=c.get("trainable_params"),
                         non_trainable_params=c.get("non_trainable_params"), epochs=c.get("epochs"),
                         best_epoch=c.get("best_epoch"),
                         val_accuracy=100 * val if isinstance(val, (int, float)) else np.nan,
                         train_images=c.get("train_images"), image_size=c.get("image_size"),
                         training_time_s=c.get("wall_time_s"), backend=c.get("backend"),
                         keras=c.get("keras_version")))
    cols = ["detector", "architecture", "trainset", "strategy", "trainable_params", "non_trainable_params",
            "epochs", "best_epoch", "val_accuracy", "train_images", "image_size", "training_time_s",
            "backend", "keras"]
    out = pd.DataFrame(rows, columns=cols)
    if out.empty:
        return out
    arch = {a: i for i, a in enumerate(("XceptionNet", "MesoInception", "MesoNet", "EfficientNet", "ShallowNet"))}
    key = out["architecture"].map(lambda a: arch.get(a, 99)) * 10 + out["detector"].str[-1].map(
        lambda d: int(d) if d.isdigit() else 9)
    return out.assign(_k=key).sort_values(["_k", "detector"]).drop(columns="_k").reset_index(drop=True)


def benchmark_summary(root: str | Path | None) -> pd.DataFrame:
    """Wall time per rule from Snakemake's benchmark files (``{root}/{rule}[/...].tsv``)."""
    cols = ["rule", "jobs", "wall_s", "max_job_s", "max_rss_mb"]
    if root is None or not Path(root).is_dir():
        return pd.DataFrame(columns=cols)
    rows = []
    for p in sorted(Path(root).rglob("*.tsv")):
        rel = p.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else p.stem
        try:
            b = pd.read_csv(p, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
            continue
        if "s" in b and len(b):
            rss = pd.to_numeric(b.get("max_rss"), errors="coerce").max() if "max_rss" in b else np.nan
            rows.append(dict(rule=rule, s=float(b["s"].iloc[-1]), rss=rss))
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = df.groupby("rule", sort=False).agg(jobs=("s", "size"), wall_s=("s", "sum"), max_job_s=("s", "max"),
                                             max_rss_mb=("rss", "max")).reset_index()
    return out.sort_values("wall_s", ascending=False).reset_index(drop=True)[cols]


SOFTWARE = ("snakemake", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "pandas",
            "pyarrow", "scipy", "scikit-learn", "scikit-image", "matplotlib", "seaborn", "tf-explain",
            "opencv-python-headless", "dlib-bin", "face-recognition", "Pillow", "dfstudy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        res = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in res.stdout.splitlines() if line.strip()] if res.returncode == 0 else []


def _keras_backend() -> str:
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def environment() -> dict:
    """Hardware and software of the machine rendering the report, without importing any framework.

    Returns
    -------
    dict
        ``hardware`` (cpu, logical_cores, memory_gib, gpus), ``platform``, ``python``,
        ``keras_backend`` (configured here) and ``software`` (distribution -> version, installed only).
    """
    software = {}
    for name in SOFTWARE:
        try:
            software[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return dict(hardware=dict(cpu=_cpu_model(), logical_cores=os.cpu_count(), memory_gib=_memory_gib(),
                              gpus=_gpus()),
                platform=platform.platform(), python=platform.python_version(),
                keras_backend=_keras_backend(), software=software)


# --------------------------------------------------------------------------------------------------
# Tables: published next to reproduced
# --------------------------------------------------------------------------------------------------

SHORT = {"original_accuracy": "original", "architecture_average": "arch. average", "train_set": "train set",
         "specialized_average": "spec. average", "specialized_degradation": "spec. degradation",
         "degradation_difference": "difference"}
PAPER = " | paper"
OUTSIDE = " | outside"


def _label(column: str) -> str:
    return SHORT.get(column, column).replace("_", " ")


def _truthy(s: pd.Series) -> pd.Series:
    return s.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))


def side_by_side(table: pd.DataFrame, versus: pd.DataFrame | None) -> pd.DataFrame:
    """A reproduced table with the published value beside every cell the paper has.

    Parameters
    ----------
    table : DataFrame
        ``results/tables/table{n}.csv`` (reproduced, rounded).
    versus : DataFrame or None
        ``results/tables/table{n}_vs_published.csv`` (detector, column, published, reproduced,
        published_outside_ci, in_published, in_reproduced).

    Returns
    -------
    DataFrame
        The table's columns; for each column the paper reports, ``"<col> | paper"`` right after it and a
        boolean ``"<col> | outside"`` (published value outside the reproduced 95 % interval); a ``note``
        column. Rows: the reproduced table in its order, then published detectors missing from it (their
        values, where computed, come from the comparison file: for Tables VI/VII, detectors under the
        threshold here).
    """
    table = table.copy()
    if versus is None or versus.empty:
        return table.assign(note="")
    v = versus.copy()
    v["published_outside_ci"] = _truthy(v.get("published_outside_ci", pd.Series(False, index=v.index)))
    in_pub = _truthy(v["in_published"]) if "in_published" in v else pd.Series(True, index=v.index)
    pub_cols = list(dict.fromkeys(v.loc[in_pub, "column"]))
    pub_detectors = list(dict.fromkeys(v.loc[in_pub, "detector"]))
    lookup = {(r.detector, r.column): r for r in v.itertuples(index=False)}

    extra = [d for d in pub_detectors if d not in set(table["detector"])]
    if extra:
        rows = []
        for d in extra:
            row = {c: np.nan for c in table.columns}
            row["detector"] = d
            for c in pub_cols:
                r = lookup.get((d, c))
                if r is not None and c in table.columns and c != "rank":
                    row[c] = r.reproduced
            rows.append(row)
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    out = pd.DataFrame({"detector": table["detector"]})
    for c in table.columns:
        if c == "detector":
            continue
        out[c] = table[c]
        if c in pub_cols:
            out[c + PAPER] = [getattr(lookup.get((d, c)), "published", np.nan)
                              if (d, c) in lookup else np.nan for d in table["detector"]]
            out[c + OUTSIDE] = [bool(lookup[(d, c)].published_outside_ci) if (d, c) in lookup else False
                                for d in table["detector"]]
    reproduced = set(table["detector"][: len(table) - len(extra)])
    pub_set = set(pub_detectors)
    notes = []
    for d in table["detector"]:
        if d not in reproduced:
            values = [getattr(lookup.get((d, c)), "reproduced", np.nan) for c in pub_cols if c != "rank"]
            has = any(pd.notna(x) for x in values)
            notes.append("paper only: under the threshold here" if has else "paper only: not reproduced")
        elif d not in pub_set:
            notes.append("ours only: not in the paper's table")
        else:
            notes.append("")
    out["note"] = notes
    if "rank" in out:
        out["rank"] = out["rank"].astype("Int64")
        if "rank" + PAPER in out:
            out["rank" + PAPER] = pd.to_numeric(out["rank" + PAPER], errors="coerce").astype("Int64")
    return out


def versus_summary(versus: pd.DataFrame | None) -> dict:
    """Cells compared, mean |difference|, accuracies whose published value lies outside our interval."""
    if versus is None or versus.empty:
        return {}
    v = versus[_truthy(versus["in_published"])] if "in_published" in versus else versus
    v = v[v["column"] != "rank"]
    diff = pd.to_numeric(v["difference"], errors="coerce")
    with_ci = v[pd.to_numeric(v["ci_low"], errors="coerce").notna()]
    return dict(cells=int(len(v)), reproduced=int(pd.to_numeric(v["reproduced"], errors="coerce").notna().sum()),
                mean_abs_difference=float(diff.abs().mean()) if diff.notna().any() else np.nan,
                with_interval=int(len(with_ci)),
                outside=int(_truthy(with_ci["published_outside_ci"]).sum()))


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------

FIGURE_PATTERNS = (
    (re.compile(r"fig2_heatmaps_(?P<label>[^_]+)_(?P<variant>.+)\.png$"), "2",
     "Figure 2 ({label}, {variant}): example Grad-CAM maps", "RQ3",
     "One face per test set (top row) and the {variant} Grad-CAM map of every {label}-trained detector on "
     "that face, in JET colours (red = high). The same face is used for every detector of a column."),
    (re.compile(r"fig3_ssim_(?P<variant>.+)\.png$"), "3",
     "Figure 3 ({variant}): similarity of congenetic detectors' heatmaps", "RQ3",
     "For each congenetic group (same architecture and training set: original, transfer, merge) and each "
     "test set (its own, then FS, NT, DF, DFD): share of fake images whose mean pairwise SSIM of the group's "
     "{variant} Grad-CAM maps is < 0.7, 0.7–0.9 and ≥ 0.9."),
    (re.compile(r"fig_faithfulness\.png$"), "3b", "Grad-CAM deletion test (beyond the study)", "RQ3",
     "One point per detector and test set: mean drop of P(fake) when the map's top pixels are occluded "
     "(y) against the same area at a random place (x); above the diagonal, the map explains the decision."),
    (re.compile(r"fig5_(?P<label>.+)\.png$"), "5", "Figure 5 ({label}): neurons that are top contributors "
     "across datasets", "RQ4",
     "For each {label} detector (rows) and each k (columns: 1/16 … 1/2 of the analysis layer), how many "
     "neurons are among the top k by causal effect on 1, 2, … 5 of the datasets (its own test set, FS, NT, "
     "DF, DFD). The coloured bar counts neurons that are top-k on all five."),
)


def figure_entries(paths: list[str | Path]) -> list[dict]:
    """Figures recognised by file name, by figure number; within a number, in the order given."""
    out = []
    for p in paths:
        for pattern, number, title, rq, caption in FIGURE_PATTERNS:
            m = pattern.search(Path(p).name)
            if m:
                label, variant = m.groupdict().get("label", ""), m.groupdict().get("variant", "")
                out.append(dict(path=str(p), number=number, rq=rq, label=label,
                                title=title.format(label=label, variant=variant),
                                caption=caption.format(label=label, variant=variant)))
                break
        else:
            log.warning("not a study figure, left out: %s", p)
    return sorted(out, key=lambda f: f["number"])


def _png_data_uri(path: str | Path, max_width: int = MAX_WIDTH) -> str:
    data = Path(path).read_bytes()
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            if im.width > max_width:
                im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
                buf = io.BytesIO()
                im.save(buf, format="PNG", optimize=True)
                data = buf.getvalue()
    except ImportError:  # Pillow missing: embed as drawn
        pass
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the report shows, already loaded (see :func:`main` for where each comes from)."""

    config: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # table4..7 (reproduced)
    versus: dict[str, pd.DataFrame] = field(default_factory=dict)  # table4..7 vs published
    findings: dict = field(default_factory=dict)  # findings.json (1, 2)
    findings_rq3: dict = field(default_factory=dict)
    findings_rq4: dict = field(default_factory=dict)
    figures: list[dict] = field(default_factory=list)  # figure_entries(...), "data_uri" and "link" added
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)
    datasets: pd.DataFrame = field(default_factory=pd.DataFrame)
    split_notes: list[str] = field(default_factory=list)
    splits: pd.DataFrame = field(default_factory=pd.DataFrame)  # results/splits/summary.csv
    detectors: pd.DataFrame = field(default_factory=pd.DataFrame)
    benchmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    cv_ap: pd.DataFrame = field(default_factory=pd.DataFrame)
    faithfulness: pd.DataFrame = field(default_factory=pd.DataFrame)  # rq3_faithfulness.csv
    faithfulness_summary: dict = field(default_factory=dict)  # faithfulness.json
    env: dict = field(default_factory=dict)


def _findings_list(d: ReportData) -> list[dict]:
    out = []
    for n, src, key in ((1, d.findings, "finding1"), (2, d.findings, "finding2"), (3, d.findings_rq3, None),
                        (4, d.findings_rq4, None)):
        f = src.get(key, {}) if key else src
        claim = f.get("statement") or f.get("claim") or ""
        out.append(dict(number=n, rq=f"RQ{n}", claim=claim, verdict=f.get("verdict", "not computed"),
                        sentence=f.get("sentence", "No result file: the analysis has not run.")))
    return out


def _rq_notes(rq: str, d: ReportData) -> list[str]:
    """Lines under the RQ3 / RQ4 figures: Finding 3 per Grad-CAM variant and its robustness, the deletion
    test's sentence; Finding 4 under both readings with its permutation baseline."""
    if rq == "RQ3":
        f = d.findings_rq3
        lines = [f"Finding 3, {v}: {x.get('sentence', '')}" for v, x in f.get("variants", {}).items()]
        lines += [f["robustness"]] if f.get("robustness") else []
        if d.faithfulness_summary.get("sentence"):
            lines.append(d.faithfulness_summary["sentence"])
        return lines
    if rq == "RQ4":
        f = d.findings_rq4
        return [f"Finding 4, {name} reading: {x.get('sentence', '')}" for name, x in f.get("readings", {}).items()]
    return []


def _verdict_class(v: str) -> str:
    v = (v or "").lower()
    if v.startswith("supported"):
        return "ok"
    if v.startswith("partly"):
        return "part"
    if v.startswith("not supported"):
        return "no"
    return "na"


def _fmt(v, col: str = "") -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    if isinstance(v, (float, np.floating)):
        if col in ("rank",) or col.endswith(("_params", "epochs", "epoch", "images", "videos", "jobs")):
            return f"{int(round(v)):,}"
        return f"{v:.2f}"
    return str(v)


def _columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not c.endswith((PAPER, OUTSIDE))]


# ------------------------------------------------------------------------------------------- HTML

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1b1b1b;
 background:#fff;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:1.7em;margin:.2em 0 .1em}h2{font-size:1.35em;margin:2em 0 .4em;padding-bottom:.2em;
 border-bottom:2px solid #0072B2}h3{font-size:1.1em;margin:1.5em 0 .3em}
.sub{color:#555;margin:0 0 1em}code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 background:#f3f4f6;padding:1px 4px;border-radius:3px;word-break:break-all}
nav{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:8px 14px;margin:12px 0}
nav a{margin-right:14px;color:#0060a0;text-decoration:none}nav a:hover{text-decoration:underline}
.scroll{overflow-x:auto;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:12.5px;font-variant-numeric:tabular-nums}
th,td{padding:3px 7px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;vertical-align:bottom}
td.t,th.t{text-align:left}td.note{color:#666;font-style:italic;text-align:left}
td.pub,th.pub{color:#6b7280;background:#fafafa;border-right:1px solid #e5e7eb}
td.out{color:#b45309;font-weight:600}tr:hover td{background:#f0f7ff}
table.kv td:first-child{text-align:left;color:#444;font-weight:600;padding-right:16px}table.kv td{text-align:left;
 white-space:normal}
td.wrap{white-space:normal;text-align:left;min-width:12em;max-width:30em;vertical-align:top}
.finding{border-left:5px solid #999;background:#fafafa;padding:8px 14px;margin:10px 0;border-radius:0 6px 6px 0}
.finding.ok{border-color:#009E73}.finding.no{border-color:#D55E00}.finding.part{border-color:#E69F00}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700;color:#fff;
 background:#777;margin-left:6px}.badge.ok{background:#007a5a}.badge.no{background:#b84a00}
.badge.part{background:#9a6a00}.claim{color:#444;font-style:italic}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #e5e7eb}
figure.f2 img{width:760px}figure.f3 img{width:1000px}figure.f5 img{width:900px}
figcaption{color:#333;font-size:13.5px;margin-top:4px;max-width:900px}
ul.meta{margin:.3em 0 1em;padding-left:1.2em;color:#333;font-size:13.5px}
.warn{background:#fff7e6;border:1px solid #f0c36d;padding:8px 12px;border-radius:6px}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _html_df(df: pd.DataFrame, text_cols=(), wrap_cols=()) -> str:
    if df is None or df.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f'<th class="{"t" if c in text_cols or c in wrap_cols else ""}">{_e(_label(c))}</th>'
                   for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            cls = "wrap" if c in wrap_cols else ("t" if c in text_cols else "")
            cells.append(f'<td class="{cls}">{_e(_fmt(r[c], c))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _html_side_by_side(sbs: pd.DataFrame) -> str:
    cols = [c for c in _columns(sbs) if c != "note"]
    text = {"detector", "architecture", "train_set", "strategy"}
    top, bottom = [], []
    for c in cols:
        name = _e(_label(c))
        if c + PAPER in sbs:
            top.append(f'<th colspan="2">{name}</th>')
            bottom.append('<th>ours</th><th class="pub">paper</th>')
        else:
            top.append(f'<th rowspan="2" class="{"t" if c in text else ""}">{name}</th>')
    top.append('<th rowspan="2" class="t">note</th>')
    rows = []
    for _, r in sbs.iterrows():
        cells = []
        for c in cols:
            if c + PAPER in sbs:
                out = bool(r[c + OUTSIDE])
                mark = ' title="published value outside our 95 % video-bootstrap interval"' if out else ""
                value = _e(_fmt(r[c], c)) + ("†" if out else "")
                cells.append(f'<td class="{"out" if out else ""}"{mark}>{value}</td>')
                cells.append(f'<td class="pub">{_e(_fmt(r[c + PAPER], c))}</td>')
            else:
                cells.append(f'<td class="{"t" if c in text else ""}">{_e(_fmt(r[c], c))}</td>')
        cells.append(f'<td class="note">{_e(r["note"])}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{"".join(top)}</tr><tr>{"".join(bottom)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _summary_lines(name: str, d: ReportData) -> list[str]:
    s = versus_summary(d.versus.get(name))
    lines = []
    if s:
        lines.append(f"published cells compared: {s['cells']}, reproduced values for {s['reproduced']}; "
                     f"mean |ours − paper| = {_fmt(s['mean_abs_difference'])} points")
        lines.append(f"accuracies whose published value lies outside our 95 % video-bootstrap interval (†): "
                     f"{s['outside']} of {s['with_interval']}")
    else:
        lines.append("no published table to compare with")
    sp = d.findings.get("table5_spearman")
    if name == "table5" and sp:
        rho = sp.get("rho")
        note = f" — {sp['note']}" if sp.get("note") else ""
        lines.append(f"Spearman correlation of published and reproduced degradations: rho = "
                     f"{_fmt(rho) if rho is not None else 'n/a'} (n = {sp.get('n')}){note}")
    if name in ("table6", "table7"):
        lines.append(f"rows: detectors whose degradation exceeds "
                     f"{_show(d.config.get('evaluation', {}).get('degradation_threshold', 30))} points, ranked by "
                     f"degradation difference")
    return lines


def _setup_kv(d: ReportData) -> list[tuple[str, str]]:
    env = d.env or {}
    hw = env.get("hardware", {})
    gpus = hw.get("gpus") or []
    cards_backend = sorted(set(d.detectors["backend"].dropna())) if "backend" in d.detectors else []
    cards_keras = sorted(set(d.detectors["keras"].dropna())) if "keras" in d.detectors else []
    total = d.detectors["training_time_s"].sum() if len(d.detectors) else np.nan
    sw = env.get("software", {})
    return [
        ("config hash", f"sha256 {config_hash(d.config)}"),
        ("data", "synthetic corpus (embedded demo)" if d.config.get("corpus", {}).get("synthesize")
         else "real datasets: " + ", ".join(f"{s} ({v['root']})" for s, v in d.config.get("sources", {}).items())),
        ("seed", str(d.config.get("seed"))),
        ("CPU", f"{hw.get('cpu', 'unknown')}, {hw.get('logical_cores', '?')} logical cores"
         + (f", {hw['memory_gib']} GiB RAM" if hw.get("memory_gib") else "")),
        ("GPU", "; ".join(gpus) if gpus else "none detected"),
        ("platform", f"{env.get('platform', '?')}, Python {env.get('python', '?')}"),
        ("Keras backend", f"training: {', '.join(cards_backend) or 'unknown'} (model cards); "
                          f"configured here: {env.get('keras_backend', '?')}"),
        ("Keras (training)", ", ".join(cards_keras) or "unknown"),
        ("software", ", ".join(f"{k} {v}" for k, v in sw.items()) or "unknown"),
        ("detectors", f"{len(d.detectors)} trained, {_fmt(total / 3600 if np.isfinite(total) else np.nan)} h "
                      f"training in total ({_fmt(total)} s)"),
    ]


def _render_html(d: ReportData) -> str:
    findings = _findings_list(d)
    dev = deviations(d.config, d.splits)
    p = []
    add = p.append
    add("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>dfstudy — how generalisable are deepfake detectors? Study report</title>"
        f"<style>{CSS}</style></head><body><main>")
    add("<h1>How generalisable are deepfake detectors? — reproduction report</h1>")
    synthetic = bool(d.config.get("corpus", {}).get("synthesize"))
    add(f'<p class="sub">dfstudy · config <code>{_e(config_hash(d.config)[:16])}</code> · '
        f"{len(d.detectors)} detectors · {'synthetic demo corpus' if synthetic else 'real datasets'}</p>")
    if synthetic:
        add('<p class="warn">This run uses the embedded <b>synthetic</b> corpus at demo scale (see '
            '<a href="#deviations">Deviations</a>). It exercises every stage of the study; its numbers are '
            "not comparable with the published ones.</p>")
    add('<nav><a href="#findings">Findings</a><a href="#setup">Setup</a><a href="#rq1">RQ1</a>'
        '<a href="#rq2">RQ2</a><a href="#rq3">RQ3</a><a href="#rq4">RQ4</a><a href="#deviations">Deviations</a>'
        '<a href="#reproduce">Reproduce</a></nav>')

    add('<h2 id="findings">Findings</h2>')
    for f in findings:
        cls = _verdict_class(f["verdict"])
        add(f'<div class="finding {cls}"><b>Finding {f["number"]}</b> ({f["rq"]})'
            f'<span class="badge {cls}">{_e(f["verdict"])}</span>'
            f'<div class="claim">Study: {_e(f["claim"])}</div><div>{_e(f["sentence"])}</div></div>')
    pc = d.findings.get("published_check")
    if pc:
        add(f"<p>Sanity check — the same rules applied to the published tables: Finding 1 "
            f"{_e(pc.get('finding1'))}, Finding 2 {_e(pc.get('finding2'))}.</p>")

    add('<h2 id="setup">Setup</h2>')
    add('<table class="kv"><tbody>' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
                                              for k, v in _setup_kv(d)) + "</tbody></table>")
    add("<h3>Sources (face extraction)</h3>")
    add("<p>Ten evenly spaced frames per video, faces aligned with face_recognition (HOG + 68 landmarks). "
        "A video without any detectable face is skipped and recorded with its reason.</p>")
    add(_html_df(d.sources, text_cols={"source"}, wrap_cols={"skip_reasons"}))
    add("<h3>Datasets and splits</h3>")
    add("<p>Real videos of the dataset's source plus the fakes of its method. Split cells: images (videos); "
        "“<i>a</i> of <i>b</i>” where the pool held fewer than the <i>b</i> images configured. All parts are "
        "balanced real/fake; each test set is disjoint from its detectors' training and validation images "
        "at its <i>disjoint</i> level (image, video or identity), which the leakage audit checks.</p>")
    add(_html_df(d.datasets, text_cols={"dataset", "role", "source", "method", "disjoint", *SPLIT_PARTS}))
    if d.split_notes:
        add('<ul class="meta">' + "".join(f"<li>{_e(n)}</li>" for n in d.split_notes) + "</ul>")
    add("<h3>Detectors</h3>")
    add(_html_df(d.detectors.drop(columns=["backend", "keras"], errors="ignore"),
                 text_cols={"detector", "architecture", "trainset", "strategy"}))
    if len(d.benchmarks):
        add("<h3>Compute per stage (Snakemake benchmarks)</h3>")
        add(_html_df(d.benchmarks, text_cols={"rule"}))

    for rq, title, names in (("rq1", "RQ1 — do detectors generalise to unseen deepfakes?", ("table4", "table5")),
                             ("rq2", "RQ2 — what do they learn: method or identity?", ("table6", "table7"))):
        add(f'<h2 id="{rq}">{_e(title)}</h2>')
        for name in names:
            add(f"<h3>{_e(TITLES[name])}</h3>")
            add('<ul class="meta">' + "".join(f"<li>{_e(x)}</li>" for x in _summary_lines(name, d)) + "</ul>")
            if name in d.tables:
                add(_html_side_by_side(side_by_side(d.tables[name], d.versus.get(name))))
            else:
                add("<p><em>not computed</em></p>")
        if rq == "rq1" and len(d.cv_ap):
            add("<h3>Beyond the study: coefficient of variation of AP over the unseen sets</h3>")
            add(_html_df(d.cv_ap, text_cols={"detector", "architecture", "train_set", "strategy"}))

    for rq, title in (("RQ3", "RQ3 — do congenetic detectors look at the same regions?"),
                      ("RQ4", "RQ4 — which neurons drive the decision across datasets?")):
        add(f'<h2 id="{rq.lower()}">{_e(title)}</h2>')
        figs = [f for f in d.figures if f["rq"] == rq]
        if not figs:
            add("<p><em>no figures</em></p>")
        for f in figs:
            add(f'<figure class="f{f["number"]}"><img src="{f["data_uri"]}" alt="{_e(f["title"])}">'
                f"<figcaption><b>{_e(f['title'])}.</b> {_e(f['caption'])}</figcaption></figure>")
        notes = _rq_notes(rq, d)
        if notes:
            add('<ul class="meta">' + "".join(f"<li>{_e(x)}</li>" for x in notes) + "</ul>")
        if rq == "RQ3" and len(d.faithfulness):
            add("<h3>Beyond the study: Grad-CAM deletion test</h3>")
            add(_html_df(d.faithfulness, text_cols={"variant", "detector", "dataset"}))

    add('<h2 id="deviations">Deviations from the study\'s protocol</h2>')
    add("<p>Computed from the resolved configuration and the sizes the splits achieved: <b>data</b> and "
        "<b>scale</b> rows appear where this run's configuration differs from the study, <b>achieved</b> rows "
        "where a split part holds another number of images than the study's, whatever was configured; "
        "<b>decision</b> rows say what we chose where the study is silent.</p>")
    add(_html_df(dev.assign(ratio=dev["ratio"].map(lambda r: f"{100 * r:.3g} %" if pd.notna(r) else "—")),
                 text_cols={"kind", "config", "ratio"}, wrap_cols={"aspect", "study", "here"}))

    add('<h2 id="reproduce">Reproduce</h2>')
    add("<p>Whole study: <code>snakemake --cores all</code>. Tables, figures and this report from existing "
        "predictions, heatmaps and neuron rankings only (no training): "
        "<code>snakemake report_only --workflow-profile profiles/report</code>. Snakemake's own report: "
        "<code>snakemake --report report.html</code>.</p>")
    add("</main></body></html>")
    return "\n".join(p) + "\n"


# ------------------------------------------------------------------------------------------- Markdown


def _md_table(cols: dict[str, list[str]]) -> str:
    """A pipe table (GitHub Markdown), columns padded so that diffs stay readable."""
    names = list(cols)
    n = len(next(iter(cols.values()), []))
    cells = {k: [str(v).replace("|", "\\|") for v in cols[k]] for k in names}
    width = {k: max([len(k), 3, *map(len, cells[k])]) for k in names}
    lines = ["| " + " | ".join(k.ljust(width[k]) for k in names) + " |",
             "|" + "|".join("-" * (width[k] + 2) for k in names) + "|"]
    lines += ["| " + " | ".join(cells[k][i].ljust(width[k]) for k in names) + " |" for i in range(n)]
    return "\n".join(lines)


def _md_df(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_(no rows)_"
    return _md_table({_label(c): [_fmt(v, c) for v in df[c]] for c in df.columns})


def _md_side_by_side(sbs: pd.DataFrame) -> str:
    cols = {}
    for c in _columns(sbs):
        outside = sbs[c + OUTSIDE] if c + OUTSIDE in sbs else [False] * len(sbs)
        cols[_label(c)] = [_fmt(v, c) + ("†" if o else "") for v, o in zip(sbs[c], outside)]
        if c + PAPER in sbs:
            cols[_label(c) + " (paper)"] = [_fmt(v, c) for v in sbs[c + PAPER]]
    return _md_table(cols)


def _render_md(d: ReportData) -> str:
    out = ["# How generalisable are deepfake detectors? — reproduction report", "",
           f"Config sha256 `{config_hash(d.config)}`.", ""]
    if d.config.get("corpus", {}).get("synthesize"):
        out += ["> This run uses the embedded **synthetic** corpus at demo scale: it exercises every stage; its "
                "numbers are not comparable with the published ones.", ""]
    out += ["## Findings", ""]
    for f in _findings_list(d):
        out += [f"**Finding {f['number']}** ({f['rq']}) — **{f['verdict']}**. _Study: {f['claim']}_", "",
                f["sentence"], ""]
    pc = d.findings.get("published_check")
    if pc:
        out += [f"Same rules on the published tables: Finding 1 {pc.get('finding1')}, Finding 2 "
                f"{pc.get('finding2')}.", ""]
    out += ["## Setup", "", "\n".join(f"- **{k}**: {v}" for k, v in _setup_kv(d)), "",
            "### Sources", "", _md_df(d.sources), "", "### Datasets and splits", "", _md_df(d.datasets), ""]
    out += [f"- {n}" for n in d.split_notes] + ([""] if d.split_notes else [])
    out += ["### Detectors", "", _md_df(d.detectors.drop(columns=["backend", "keras"], errors="ignore")), ""]
    if len(d.benchmarks):
        out += ["### Compute per stage", "", _md_df(d.benchmarks), ""]
    for rq, names in (("RQ1", ("table4", "table5")), ("RQ2", ("table6", "table7"))):
        out += [f"## {rq}", ""]
        for name in names:
            out += [f"### {TITLES[name]}", ""] + [f"- {x}" for x in _summary_lines(name, d)] + [""]
            out += [_md_side_by_side(side_by_side(d.tables[name], d.versus.get(name)))
                    if name in d.tables else "_not computed_", ""]
        if rq == "RQ1" and len(d.cv_ap):
            out += ["### Beyond the study: coefficient of variation of AP", "", _md_df(d.cv_ap), ""]
    for rq in ("RQ3", "RQ4"):
        out += [f"## {rq}", ""]
        for f in [f for f in d.figures if f["rq"] == rq]:
            out += [f"![{f['title']}]({f.get('link', f['path'])})", "", f"**{f['title']}.** {f['caption']}", ""]
        notes = _rq_notes(rq, d)
        out += [f"- {x}" for x in notes] + ([""] if notes else [])
        if rq == "RQ3" and len(d.faithfulness):
            out += ["### Beyond the study: Grad-CAM deletion test", "", _md_df(d.faithfulness), ""]
    dev = deviations(d.config, d.splits)
    out += ["## Deviations from the study's protocol", "",
            _md_df(dev.assign(ratio=dev["ratio"].map(lambda r: f"{100 * r:.3g} %" if pd.notna(r) else "—"))), ""]
    return "\n".join(out)


def study_report(data: ReportData) -> tuple[str, str]:
    """Render the study report.

    Parameters
    ----------
    data : ReportData
        Loaded tables, findings, figures (each with a ``data_uri`` for the HTML and a ``link`` for the
        Markdown), setup tables and environment.

    Returns
    -------
    (str, str)
        The self-contained HTML page and its Markdown twin.
    """
    return _render_html(data), _render_md(data)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _by_stem(paths: list[str]) -> dict[str, Path]:
    return {Path(p).stem: Path(p) for p in paths}


def load(args) -> ReportData:
    """Read every input named on the command line into a :class:`ReportData`."""
    config = json.loads(args.config_json)
    files = _by_stem(args.tables)
    tables = {n: pd.read_csv(files[n]) for n in TABLES if n in files}
    versus = {n: pd.read_csv(files[f"{n}_vs_published"]) for n in TABLES if f"{n}_vs_published" in files}
    for n in TABLES:
        if n not in tables:
            log.warning("no %s.csv given: the report says 'not computed'", n)
    found = _by_stem(args.findings)
    findings = {k: json.loads(found[k].read_text()) if k in found else {}
                for k in ("findings", "findings_rq3", "findings_rq4", "faithfulness")}
    manifests = {Path(p).parent.name: pd.read_parquet(p, columns=["video_id", "label", "method", "frame",
                                                                   "status", "reason"])
                 for p in args.manifests}
    splits = pd.read_csv(args.split_summary) if args.split_summary else pd.DataFrame(
        columns=["dataset", "part", "requested", "actual", "videos", "fake"])
    figures = figure_entries(args.figures)
    for f in figures:
        f["data_uri"] = _png_data_uri(f["path"])
        f["link"] = os.path.relpath(f["path"], Path(args.md).parent)
    cards = [json.loads(Path(p).read_text()) for p in args.cards]
    return ReportData(
        config=config, tables=tables, versus=versus, findings=findings["findings"],
        findings_rq3=findings["findings_rq3"], findings_rq4=findings["findings_rq4"], figures=figures,
        sources=source_summary(manifests), datasets=dataset_summary(config.get("datasets", {}), manifests, splits),
        split_notes=split_notes(splits), splits=splits, detectors=detector_summary(cards),
        benchmarks=benchmark_summary(args.benchmarks),
        cv_ap=pd.read_csv(files["cv_ap"]) if "cv_ap" in files else pd.DataFrame(),
        faithfulness=pd.read_csv(files["rq3_faithfulness"]) if "rq3_faithfulness" in files else pd.DataFrame(),
        faithfulness_summary=findings["faithfulness"], env=environment())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.report", description=__doc__.splitlines()[0])
    p.add_argument("--config-json", required=True, help="the resolved workflow config as JSON (hashed, "
                   "and the source of the deviations)")
    p.add_argument("--tables", nargs="*", default=[], help="dfstudy.tables outputs, recognised by name: "
                   "table{4..7}.csv, table{4..7}_vs_published.csv, cv_ap.csv; rq3_faithfulness.csv")
    p.add_argument("--findings", nargs="*", default=[], help="findings.json, findings_rq3.json, findings_rq4.json, faithfulness.json")
    p.add_argument("--figures", nargs="*", default=[], help="fig2_heatmaps_*_*.png, fig3_ssim_*.png, fig_faithfulness.png, fig5_*.png")
    p.add_argument("--manifests", nargs="*", default=[], help="results/faces/{source}/manifest.parquet")
    p.add_argument("--split-summary", default=None, help="results/splits/summary.csv")
    p.add_argument("--cards", nargs="*", default=[], help="model cards results/models/*/*/*.json")
    p.add_argument("--benchmarks", default=None, help="Snakemake benchmark folder (optional)")
    p.add_argument("--html", required=True, help="the self-contained HTML page")
    p.add_argument("--md", required=True, help="its Markdown twin (figures linked relative to it)")
    for name in SETUP_TABLES:
        p.add_argument(f"--{name}-csv", default=None, help=f"also write the {name} table as CSV")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data = load(args)
    page, text = study_report(data)
    setup = dict(sources=data.sources, datasets=data.datasets, detectors=data.detectors,
                 deviations=deviations(data.config, data.splits))
    outputs = [(args.html, page), (args.md, text)]
    for name in SETUP_TABLES:
        path = getattr(args, f"{name}_csv")
        if path:
            outputs.append((path, setup[name].to_csv(index=False, float_format="%.4g")))
    for path, content in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content, encoding="utf-8")
    log.info("-> %s (%d kB), %s", args.html, len(page) // 1024, args.md)


if __name__ == "__main__":
    main()
