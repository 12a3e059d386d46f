"""The study report: setup, Tables IV-VII next to the published ones, Figures 2, 3 and 5, Findings 1-4
and every deviation from the study's protocol, as one static HTML page and a Markdown twin.

The report is built once, as a :class:`dfstudy.document.Document` (:func:`study_document`), and rendered by
the jinja2 templates in ``reports/templates/``: ``document.html.j2`` and ``document.md.j2``. The HTML page is
self-contained: inline CSS, no JavaScript, figures embedded as base64 ``data:`` URIs (downscaled to at most
:data:`MAX_WIDTH` pixels), so it reads the same opened from disk, mailed or archived. The Markdown twin holds
the same text and tables and links the figures by relative path; it is meant for ``git diff`` between runs,
which is why neither file carries a timestamp.

Everything shown is read from files the workflow already wrote (tables and findings from
``dfstudy.tables``, ``dfstudy.similarity``, ``dfstudy.causal``; figures; model cards; face manifests; the
split summary; the benchmark files named on the command line). Nothing is recomputed here except counts, so
rebuilding the report takes seconds. The one thing computed from the configuration is the list of
deviations (:mod:`dfstudy.deviations`); the machine's hardware and software come from :mod:`dfstudy.machine`;
training sets, datasets and architectures from the study (``--study``, :mod:`dfstudy.study`).

Command line (what rule ``render_report`` runs)::

    python -m dfstudy.report --config-json "$(resolved config as JSON)" --study "$(Study as JSON)" \\
        --tables results/tables/table{4,5,6,7}{,_vs_published}.csv results/tables/cv_ap.csv \\
        --findings results/tables/findings{,_rq3,_rq4}.json \\
        --figures results/figures/fig2_heatmaps_CELEB.png ... --manifests results/faces/*/manifest.parquet \\
        --split-summary results/splits/summary.csv --cards results/models/*/*/*.json \\
        --benchmarks results/benchmarks/train_detector/CELEB/MesoNet/original.tsv ... \\
        --templates reports/templates --html results/report/study.html --md results/report/study.md \\
        --sources-csv results/report/sources.csv ...   # and --datasets-csv, --detectors-csv, --deviations-csv
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy.deviations import STUDY_PART_SIZES, count_word, deviations, show
from dfstudy.document import (TEMPLATES, Bullets, Cell, Column, Contents, Document, Figure, Finding, Heading,
                              KeyValues, Paragraph, Table, b, code, i, render)
from dfstudy.machine import environment
from dfstudy.splits import disjoint_level
from dfstudy.study import PAPER, Study, add_argument as add_study_argument
from dfstudy.tables import TITLES

log = logging.getLogger(__name__)

__all__ = [
    "ReportData", "config_hash", "deviations", "source_summary", "dataset_summary", "detector_summary",
    "benchmark_summary", "side_by_side", "figure_entries", "study_document", "study_report", "main",
]

TABLES = ("table4", "table5", "table6", "table7")
SPLIT_PARTS = ("train", "val", "test", "finetune", "finetune_val")
SETUP_TABLES = ("sources", "datasets", "detectors", "deviations")  # also written as CSV for Snakemake's report
MAX_WIDTH = 1800  # px; figures are drawn at 300 dpi, more than a screen needs


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Setup: data, detectors, compute
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


def detector_summary(cards: list[dict], study: Study = PAPER) -> pd.DataFrame:
    """One row per model card (``results/models/{trainset}/{arch}/{strategy}.json``), in study order: the
    paper's table order of architectures, then the study numbers; cards the study does not know come last."""
    rows, order = [], []
    for c in cards:
        try:
            name = study.detector_name(c["architecture"], c["trainset"], c["strategy"])
            order.append((study.table_architectures.index(c["architecture"]),
                          study.number(c["trainset"], c["strategy"])))
        except (KeyError, ValueError):
            name = "/".join(str(c.get(k, "?")) for k in ("trainset", "architecture", "strategy"))
            order.append((len(study.architectures), 0))
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
    out = out.assign(_a=[a for a, _ in order], _n=[n for _, n in order])
    return out.sort_values(["_a", "_n", "detector"]).drop(columns=["_a", "_n"]).reset_index(drop=True)


def benchmark_rule(path: str | Path) -> str:
    """The rule a benchmark file belongs to: ``.../benchmarks/{rule}.tsv`` or ``.../benchmarks/{rule}/...tsv``
    (every rule's ``benchmark:`` mirrors its log under ``results/benchmarks/{rule}``); else the file's stem."""
    parts = Path(path).parts
    if "benchmarks" in parts[:-1]:
        below = parts[len(parts) - parts[::-1].index("benchmarks"):]
        return below[0] if len(below) > 1 else Path(path).stem
    return Path(path).stem


def benchmark_summary(paths: list[str | Path]) -> pd.DataFrame:
    """Wall time per rule from the Snakemake benchmark files given (and from no other file)."""
    cols = ["rule", "jobs", "wall_s", "max_job_s", "max_rss_mb"]
    rows = []
    for p in sorted(map(Path, paths)):
        rule = benchmark_rule(p)
        try:
            bench = pd.read_csv(p, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
            continue
        if "s" in bench and len(bench):
            rss = pd.to_numeric(bench.get("max_rss"), errors="coerce").max() if "max_rss" in bench else np.nan
            rows.append(dict(rule=rule, s=float(bench["s"].iloc[-1]), rss=rss))
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = df.groupby("rule", sort=False).agg(jobs=("s", "size"), wall_s=("s", "sum"), max_job_s=("s", "max"),
                                             max_rss_mb=("rss", "max")).reset_index()
    return out.sort_values("wall_s", ascending=False).reset_index(drop=True)[cols]


# --------------------------------------------------------------------------------------------------
# Tables: published next to reproduced
# --------------------------------------------------------------------------------------------------

SHORT = {"original_accuracy": "original", "architecture_average": "arch. average", "train_set": "train set",
         "specialized_average": "spec. average", "specialized_degradation": "spec. degradation",
         "degradation_difference": "difference"}
PAPER_COL = " | paper"
OUTSIDE_COL = " | outside"


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
            out[c + PAPER_COL] = [getattr(lookup.get((d, c)), "published", np.nan)
                              if (d, c) in lookup else np.nan for d in table["detector"]]
            out[c + OUTSIDE_COL] = [bool(lookup[(d, c)].published_outside_ci) if (d, c) in lookup else False
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
        if "rank" + PAPER_COL in out:
            out["rank" + PAPER_COL] = pd.to_numeric(out["rank" + PAPER_COL], errors="coerce").astype("Int64")
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
    (re.compile(r"^comparison\.png$"), "C", "Beyond the study: detector families ranked by mean unseen accuracy",
     "beyond", "Best on top: mean accuracy on the unseen sets {unseen} with its 95 % video-bootstrap interval, "
     "coloured by approach; grey crosses: accuracy on the detectors' own test sets."),
    (re.compile(r"fig2_heatmaps_(?P<label>[^_]+)_(?P<variant>.+)\.png$"), "2",
     "Figure 2 ({label}, {variant}): example Grad-CAM maps", "RQ3",
     "One face per test set (top row) and the {variant} Grad-CAM map of every {label}-trained detector on "
     "that face, in JET colours (red = high). The same face is used for every detector of a column."),
    (re.compile(r"fig3_ssim_(?P<variant>.+)\.png$"), "3",
     "Figure 3 ({variant}): similarity of congenetic detectors' heatmaps", "RQ3",
     "For each congenetic group (same architecture and training set: original, transfer, merge) and each "
     "test set (its own, then {unseen}): share of fake images whose mean pairwise SSIM of the group's "
     "{variant} Grad-CAM maps is < 0.7, 0.7–0.9 and ≥ 0.9."),
    (re.compile(r"fig_faithfulness\.png$"), "3b", "Grad-CAM deletion test (beyond the study)", "RQ3",
     "One point per detector and test set: mean drop of P(fake) when the map's top pixels are occluded "
     "(y) against the same area at a random place (x); above the diagonal, the map explains the decision."),
    (re.compile(r"fig5_(?P<label>.+)\.png$"), "5", "Figure 5 ({label}): neurons that are top contributors "
     "across datasets", "RQ4",
     "For each {label} detector (rows) and each k (columns: 1/16 … 1/2 of the analysis layer), how many "
     "neurons are among the top k by causal effect on 1, 2, … {n_sets} of the datasets (its own test set, "
     "{unseen}). The coloured bar counts neurons that are top-k on all {n_sets_word}."),
)


def figure_entries(paths: list[str | Path], study: Study = PAPER) -> list[dict]:
    """Figures recognised by file name, by figure number; within a number, in the order given. Captions
    name the study's unseen sets (RQ3 and RQ4 analyse a detector's own test set and those)."""
    n_sets = 1 + len(study.unseen)
    names = dict(unseen=", ".join(study.unseen), n_sets=n_sets, n_sets_word=count_word(n_sets))
    out = []
    for p in paths:
        for pattern, number, title, rq, caption in FIGURE_PATTERNS:
            m = pattern.search(Path(p).name)
            if m:
                label, variant = m.groupdict().get("label", ""), m.groupdict().get("variant", "")
                out.append(dict(path=str(p), number=number, rq=rq, label=label,
                                title=title.format(label=label, variant=variant),
                                caption=caption.format(label=label, variant=variant, **names)))
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
                im.save(buf, format="PNG")  # optimize=True: 5x the time (29 s of the demo) for 5 % smaller
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
    study: Study = PAPER  # the run's training sets, datasets and architectures
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
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)  # comparison.csv (beyond the study)
    comparison_summary: dict = field(default_factory=dict)  # comparison.json: the sentence
    loo: pd.DataFrame = field(default_factory=pd.DataFrame)  # loo.csv: leave-one-out (beyond the study)
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
    return [c for c in df.columns if not c.endswith((PAPER_COL, OUTSIDE_COL))]



# --------------------------------------------------------------------------------------------------
# The report as one document (dfstudy.document): the HTML and Markdown templates render the same blocks
# --------------------------------------------------------------------------------------------------

TEXT_COLUMNS = {"source", "dataset", "role", "method", "disjoint", *SPLIT_PARTS, "detector", "architecture",
                "trainset", "train_set", "strategy", "variant", "rule", "kind", "config", "ratio", "family",
                "trainsets", "heldout"}
WRAP_COLUMNS = {"skip_reasons", "aspect", "study", "here", "approach"}  # long text, wrapped in HTML
OUTSIDE_TITLE = "published value outside our 95 % video-bootstrap interval"
TITLE = "How generalisable are deepfake detectors? — reproduction report"


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
                     f"{show(d.config.get('evaluation', {}).get('degradation_threshold', 30))} points, ranked by "
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


def with_intervals(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Each column ``x`` that has ``x_lo`` and ``x_hi`` beside it as one text column ``x [lo, hi]``; the
    other columns as they are (the comparison and leave-one-out tables, whatever columns they hold)."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c.endswith(("_lo", "_hi")) and c[:-3] in df.columns:
            continue
        if f"{c}_lo" in df.columns and f"{c}_hi" in df.columns:
            out[f"{c} ({100 * level:g} % CI)"] = [f"{_fmt(v, c)} [{_fmt(lo, c)}, {_fmt(hi, c)}]"
                                                  for v, lo, hi in zip(df[c], df[f"{c}_lo"], df[f"{c}_hi"])]
        else:
            out[c] = df[c]
    return out


def _beyond_the_study(d: ReportData) -> list:
    """The comparison of approaches (table, figure, sentence) and, when given, the leave-one-out table."""
    blocks = [Heading(2, "Beyond the study: comparison of approaches", "comparison", "Comparison"),
              Paragraph(("Not part of the study: every detector family (an architecture under one strategy, pooled "
                         "over the training sets) ranked by mean accuracy on the unseen sets, with 95 % "
                         "video-bootstrap intervals; ", i("approach"), " names the study or the extension a family "
                         "comes from. Video AUC scores a video by the share of its frames called fake (vote) or by "
                         "its mean frame score (mean); CoV AP is the coefficient of variation of AP across the "
                         "unseen sets."))]
    if d.comparison_summary.get("sentence"):
        blocks.append(Paragraph((b(d.comparison_summary["sentence"]),)))
    blocks += [Figure(f["number"], f["title"], f["caption"], f.get("data_uri", ""), f.get("link", f["path"]))
               for f in d.figures if f["rq"] == "beyond"]
    shown = d.comparison.drop(columns=["architecture", "strategy", "n_unseen"], errors="ignore")
    blocks.append(_table(with_intervals(shown)) if len(shown) else Paragraph((i("not computed"),)))
    if len(d.loo):
        blocks += [Heading(3, "Beyond the study: leave one method out"),
                   Paragraph("Each row: detectors trained without one fake method (held out) and tested on it."),
                   _table(with_intervals(d.loo))]
    return blocks


def _table(df: pd.DataFrame) -> Table | Paragraph:
    """A DataFrame as a document table, every value formatted by :func:`_fmt`."""
    if df is None or df.empty:
        return Paragraph((i("(no rows)"),))
    columns = tuple(Column(_label(c), "wrap" if c in WRAP_COLUMNS else "t" if c in TEXT_COLUMNS else "")
                    for c in df.columns)
    rows = tuple(tuple(Cell(_fmt(r[c], c)) for c in df.columns) for _, r in df.iterrows())
    return Table(columns, rows)


def _side_by_side_table(sbs: pd.DataFrame) -> Table:
    """:func:`side_by_side` as a document table: each published column as "ours" and "paper" under one
    header, a dagger where the published value lies outside our interval, the note last."""
    cols = [c for c in _columns(sbs) if c != "note"]
    columns = []
    for c in cols:
        if c + PAPER_COL in sbs:
            columns += [Column(_label(c), group=_label(c), sub="ours"),
                        Column(f"{_label(c)} (paper)", "pub", group=_label(c), sub="paper")]
        else:
            columns.append(Column(_label(c), "t" if c in TEXT_COLUMNS else ""))
    columns.append(Column("note", "note"))
    rows = []
    for _, r in sbs.iterrows():
        cells = []
        for c in cols:
            if c + PAPER_COL in sbs:
                out = bool(r[c + OUTSIDE_COL])
                ours = Cell(_fmt(r[c], c) + "†", "out", OUTSIDE_TITLE) if out else Cell(_fmt(r[c], c))
                cells += [ours, Cell(_fmt(r[c + PAPER_COL], c))]
            else:
                cells.append(Cell(_fmt(r[c], c)))
        cells.append(Cell(str(r["note"])))
        rows.append(tuple(cells))
    return Table(tuple(columns), tuple(rows))


def _rq_tables(study: Study) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """RQ1: Tables IV and V; RQ2: Table VI where the study has specialised sets, VII where same-identity ones."""
    rq2 = (*(("table6",) if study.specialised_sets else ()), *(("table7",) if study.same_identity_sets else ()))
    return (("rq1", "RQ1 — do detectors generalise to unseen deepfakes?", ("table4", "table5")),
            ("rq2", "RQ2 — what do they learn: method or identity?", rq2))


def study_document(d: ReportData) -> Document:
    """The study report as one document: findings, setup, RQ1-RQ4, deviations, how to reproduce."""
    doc = Document(TITLE)
    add = doc.blocks.append
    synthetic = bool(d.config.get("corpus", {}).get("synthesize"))
    add(Paragraph(("dfstudy · config ", code(config_hash(d.config)[:16]),
                   f" · {len(d.detectors)} detectors · {'synthetic demo corpus' if synthetic else 'real datasets'}"),
                  "sub"))
    if synthetic:
        add(Paragraph(("This run uses the embedded ", b("synthetic"), " corpus at demo scale (see the deviations "
                       "below). It exercises every stage of the study; its numbers are not comparable with the "
                       "published ones."), "warn"))
    add(Contents())

    add(Heading(2, "Findings", "findings", "Findings"))
    for f in _findings_list(d):
        add(Finding(f["number"], f["rq"], f["verdict"], f["claim"], f["sentence"], _verdict_class(f["verdict"])))
    pc = d.findings.get("published_check")
    if pc:
        add(Paragraph(f"Sanity check — the same rules applied to the published tables: Finding 1 "
                      f"{pc.get('finding1')}, Finding 2 {pc.get('finding2')}."))

    add(Heading(2, "Setup", "setup", "Setup"))
    add(KeyValues(tuple(_setup_kv(d))))
    add(Heading(3, "Sources (face extraction)"))
    add(Paragraph("Ten evenly spaced frames per video, faces aligned with face_recognition (HOG + 68 landmarks). "
                  "A video without any detectable face is skipped and recorded with its reason."))
    add(_table(d.sources))
    add(Heading(3, "Datasets and splits"))
    add(Paragraph(("Real videos of the dataset's source plus the fakes of its method. Split cells: images (videos); "
                   "“", i("a"), " of ", i("b"), "” where the pool held fewer than the ", i("b"), " images "
                   "configured. All parts are balanced real/fake; each test set is disjoint from its detectors' "
                   "training and validation images at its ", i("disjoint"), " level (image, video or identity), "
                   "which the leakage audit checks.")))
    add(_table(d.datasets))
    if d.split_notes:
        add(Bullets(tuple(d.split_notes)))
    add(Heading(3, "Detectors"))
    add(_table(d.detectors.drop(columns=["backend", "keras"], errors="ignore")))
    if len(d.benchmarks):
        add(Heading(3, "Compute per stage (Snakemake benchmarks)"))
        add(_table(d.benchmarks))

    for rq, title, names in _rq_tables(d.study):
        add(Heading(2, title, rq, rq.upper()))
        if not names:
            add(Paragraph((i("no test sets for this question in this study"),)))
        for name in names:
            add(Heading(3, TITLES[name]))
            add(Bullets(tuple(_summary_lines(name, d))))
            add(_side_by_side_table(side_by_side(d.tables[name], d.versus.get(name))) if name in d.tables
                else Paragraph((i("not computed"),)))
        if rq == "rq1" and len(d.cv_ap):
            add(Heading(3, "Beyond the study: coefficient of variation of AP over the unseen sets"))
            add(_table(d.cv_ap))

    for rq, title in (("RQ3", "RQ3 — do congenetic detectors look at the same regions?"),
                      ("RQ4", "RQ4 — which neurons drive the decision across datasets?")):
        add(Heading(2, title, rq.lower(), rq))
        figs = [f for f in d.figures if f["rq"] == rq]
        if not figs:
            add(Paragraph((i("no figures"),)))
        for f in figs:
            add(Figure(f["number"], f["title"], f["caption"], f.get("data_uri", ""), f.get("link", f["path"])))
        notes = _rq_notes(rq, d)
        if notes:
            add(Bullets(tuple(notes)))
        if rq == "RQ3" and len(d.faithfulness):
            add(Heading(3, "Beyond the study: Grad-CAM deletion test"))
            add(_table(d.faithfulness))

    doc.blocks.extend(_beyond_the_study(d))

    dev = deviations(d.config, d.splits)
    add(Heading(2, "Deviations from the study's protocol", "deviations", "Deviations"))
    add(Paragraph(("Computed from the resolved configuration and the sizes the splits achieved: ", b("data"),
                   " and ", b("scale"), " rows appear where this run's configuration differs from the study, ",
                   b("achieved"), " rows where a split part holds another number of images than the study's, "
                   "whatever was configured; ", b("decision"), " rows say what we chose where the study is "
                   "silent.")))
    add(_table(dev.assign(ratio=dev["ratio"].map(lambda r: f"{100 * r:.3g} %" if pd.notna(r) else "—"))))

    add(Heading(2, "Reproduce", "reproduce", "Reproduce"))
    add(Paragraph(("Whole study: ", code("snakemake --cores all"), ". Tables, figures and this report from "
                   "existing predictions, heatmaps and neuron rankings only (no training): ",
                   code("snakemake report_only --workflow-profile profiles/report"), ". Snakemake's own report: ",
                   code("snakemake --report report.html"), ".")))
    return doc


def study_report(data: ReportData, templates: str | Path = TEMPLATES) -> tuple[str, str]:
    """Render the study report.

    Parameters
    ----------
    data : ReportData
        Loaded tables, findings, figures (each with a ``data_uri`` for the HTML and a ``link`` for the
        Markdown), setup tables and environment.
    templates : path
        The folder of ``document.html.j2`` and ``document.md.j2`` (``reports/templates``).

    Returns
    -------
    (str, str)
        The self-contained HTML page and its Markdown twin, both rendered from :func:`study_document`.
    """
    doc = study_document(data)
    return render(doc, "html", templates), render(doc, "md", templates)


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
                for k in ("findings", "findings_rq3", "findings_rq4", "faithfulness", "comparison")}
    manifests = {Path(p).parent.name: pd.read_parquet(p, columns=["video_id", "label", "method", "frame",
                                                                   "status", "reason"])
                 for p in args.manifests}
    splits = pd.read_csv(args.split_summary) if args.split_summary else pd.DataFrame(
        columns=["dataset", "part", "requested", "actual", "videos", "fake"])
    figures = figure_entries(args.figures, args.study)
    for f in figures:
        f["data_uri"] = _png_data_uri(f["path"])
        f["link"] = os.path.relpath(f["path"], Path(args.md).parent)
    cards = [json.loads(Path(p).read_text()) for p in args.cards]
    return ReportData(
        config=config, study=args.study, tables=tables, versus=versus, findings=findings["findings"],
        findings_rq3=findings["findings_rq3"], findings_rq4=findings["findings_rq4"], figures=figures,
        sources=source_summary(manifests), datasets=dataset_summary(config.get("datasets", {}), manifests, splits),
        split_notes=split_notes(splits), splits=splits, detectors=detector_summary(cards, args.study),
        benchmarks=benchmark_summary(args.benchmarks),
        cv_ap=pd.read_csv(files["cv_ap"]) if "cv_ap" in files else pd.DataFrame(),
        faithfulness=pd.read_csv(files["rq3_faithfulness"]) if "rq3_faithfulness" in files else pd.DataFrame(),
        faithfulness_summary=findings["faithfulness"],
        comparison=pd.read_csv(files["comparison"]) if "comparison" in files else pd.DataFrame(),
        comparison_summary=findings["comparison"],
        loo=pd.read_csv(files["loo"]) if "loo" in files else pd.DataFrame(), env=environment())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.report", description=__doc__.splitlines()[0])
    p.add_argument("--config-json", required=True, help="the resolved workflow config as JSON (hashed, "
                   "and the source of the deviations)")
    add_study_argument(p)
    p.add_argument("--tables", nargs="*", default=[], help="dfstudy.tables outputs, recognised by name: "
                   "table{4..7}.csv, table{4..7}_vs_published.csv, cv_ap.csv; rq3_faithfulness.csv; beyond the study: "
                   "comparison.csv, loo.csv")
    p.add_argument("--findings", nargs="*", default=[], help="findings.json, findings_rq3.json, findings_rq4.json, faithfulness.json, comparison.json")
    p.add_argument("--figures", nargs="*", default=[], help="fig2_heatmaps_*_*.png, fig3_ssim_*.png, fig_faithfulness.png, fig5_*.png, comparison.png")
    p.add_argument("--manifests", nargs="*", default=[], help="results/faces/{source}/manifest.parquet")
    p.add_argument("--split-summary", default=None, help="results/splits/summary.csv")
    p.add_argument("--cards", nargs="*", default=[], help="model cards results/models/*/*/*.json")
    p.add_argument("--benchmarks", nargs="*", default=[], help="Snakemake benchmark files, "
                   "results/benchmarks/{rule}[/...].tsv (the rule declares them; no other file is read)")
    p.add_argument("--templates", default=str(TEMPLATES), help="folder of document.html.j2 and document.md.j2 "
                   "(default: reports/templates of this checkout)")
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
    page, text = study_report(data, args.templates)
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
