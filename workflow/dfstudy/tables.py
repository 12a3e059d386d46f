"""The study's Tables IV-VII from prediction files, set against the published numbers.

Pipeline: prediction files -> :func:`collect_metrics` (one row of metrics per detector x test set, with
video-bootstrap intervals) -> :func:`build_tables` (Tables IV-VII, unrounded) -> rounding as the paper
rounds -> CSV / Markdown / LaTeX, plus "published vs reproduced" per table, the Coefficient of Variation
of AP across the unseen sets, and Findings 1 and 2 as sentences computed from the tables.

Definitions (the study's, Section IV):

* detector study name ``<Arch><n>``: n = 1 original / 2 transfer / 3 merge on CELEB, 4-6 likewise on F2F;
* original accuracy: accuracy on the detector's own training set's test split (CELEB or F2F);
* average: mean accuracy over the unseen sets FS, NT, DF, DFD; degradation = original - average (points);
  Table V ranks by degradation ascending (ties broken by detector name);
* Table VI: CELEB-trained detectors with degradation > threshold (30); specialised degradation =
  original - CELEB-M; degradation difference = degradation - specialised degradation; ranked descending;
* Table VII: F2F-trained detectors over the threshold; specialised average = mean(FS-I, NT-I); the rest
  as Table VI.

Rounding. Every derived number is computed from unrounded accuracies and rounded once, for display, to
two decimals. The published tables follow one rule throughout, which :func:`round_paper` reproduces: the
value computed in binary floating point, read to 15 significant digits, then rounded half away from
zero (spreadsheet ``ROUND``). It reproduces all 30 rows of Table V and every cell of Tables VI and VII;
plain exact half-up rounding fails one cell (Table VII, MesoInception4, degradation difference: exact
-0.225, published -0.22, because the float difference is -0.224999...), and Python's ``round`` fails
Table V averages such as XceptionNet3 69.025 -> 69.03.

Missing data. Tables cover the detectors and test sets that exist. If an unseen set is absent for every
detector, the average is over the unseen sets that exist (reported in ``findings.json``); a detector that
lacks one of them gets no average, degradation or rank rather than an average over fewer sets.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import zlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from dfstudy.metrics import evaluate_predictions

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES", "TRAINSETS", "STRATEGIES", "UNSEEN", "SPECIALIZED",
    "detector_name", "parse_detector", "round_paper", "find_predictions", "collect_metrics",
    "accuracy_wide", "build_tables", "round_table", "compare_with_published", "cv_ap",
    "finding1", "finding2", "load_reference", "write_outputs", "main",
]

# The paper's Table IV lists architectures in this order; unknown architectures follow, sorted.
ARCHITECTURES = ("XceptionNet", "MesoInception", "MesoNet", "EfficientNet", "ShallowNet")
TRAINSETS = ("CELEB", "F2F")
STRATEGIES = ("original", "transfer", "merge")
UNSEEN = ("FS", "NT", "DF", "DFD")
SPECIALIZED = {"CELEB": ("CELEB-M",), "F2F": ("FS-I", "NT-I")}

TABLE_COLUMNS = {
    "table4": ["detector", "architecture", "train_set", "strategy", "original_accuracy",
               "architecture_average"],
    "table5": ["rank", "detector", "original_accuracy", *UNSEEN, "average", "degradation"],
    "table6": ["rank", "detector", "original_accuracy", *UNSEEN, "average", "degradation", "CELEB-M",
               "specialized_degradation", "degradation_difference"],
    "table7": ["rank", "detector", "original_accuracy", *UNSEEN, "average", "degradation", "FS-I",
               "NT-I", "specialized_average", "specialized_degradation", "degradation_difference"],
}
REFERENCE_FILES = {
    "table4": "paper_table4_original_accuracy.csv",
    "table5": "paper_table5_unseen_accuracy.csv",
    "table6": "paper_table6_celeb_m.csv",
    "table7": "paper_table7_same_identity.csv",
}
TITLES = {
    "table4": "Table IV: accuracy (%) on the original test set",
    "table5": "Table V: generalisability to unseen datasets (RQ1)",
    "table6": "Table VI: CELEB-trained detectors on CELEB-M, same synthesis method (RQ2)",
    "table7": "Table VII: F2F-trained detectors on FS-I / NT-I, same identities (RQ2)",
}
# Float noise must neither break ties nor push an exact 30.00 over the threshold.
_CLEAN_DECIMALS = 9


# --------------------------------------------------------------------------------------------------
# Names and rounding
# --------------------------------------------------------------------------------------------------


def detector_name(arch: str, trainset: str, strategy: str) -> str:
    """Study name of a detector, e.g. ``("MesoNet", "F2F", "transfer") -> "MesoNet5"``."""
    return f"{arch}{1 + 3 * TRAINSETS.index(trainset) + STRATEGIES.index(strategy)}"


def parse_detector(name: str) -> tuple[str, str, str]:
    """Inverse of :func:`detector_name`: ``"MesoNet5" -> ("MesoNet", "F2F", "transfer")``."""
    m = re.fullmatch(r"(.+?)([1-6])", name)
    if not m:
        raise ValueError(f"not a study detector name: {name!r}")
    n = int(m.group(2)) - 1
    return m.group(1), TRAINSETS[n // 3], STRATEGIES[n % 3]


def _round_one(x, decimals: int) -> float:
    if x is None or x is pd.NA or not np.isfinite(x):
        return math.nan
    d = Decimal(format(float(x), ".15g"))
    return float(d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def round_paper(x, decimals: int = 2):
    """Round as the published tables do: float value read to 15 significant digits, half away from zero.

    Accepts a scalar, a Series or an array; NaN stays NaN.
    """
    if isinstance(x, pd.Series):
        return x.map(lambda v: _round_one(v, decimals)).astype(float)
    if np.ndim(x):
        return np.vectorize(lambda v: _round_one(v, decimals), otypes=[float])(x)
    return _round_one(x, decimals)


def _clean(s: pd.Series) -> pd.Series:
    return s.astype(float).round(_CLEAN_DECIMALS)


# --------------------------------------------------------------------------------------------------
# Prediction files -> long metrics table
# --------------------------------------------------------------------------------------------------


def find_predictions(root: str | Path) -> pd.DataFrame:
    """Prediction files under ``root/{trainset}/{arch}/{strategy}/{dataset}.parquet``.

    Returns
    -------
    DataFrame
        ``trainset, arch, strategy, dataset, path``; files that do not fit the layout are skipped with
        a warning.
    """
    rows = []
    for p in sorted(Path(root).glob("*/*/*/*.parquet")):
        trainset, arch, strategy = p.parts[-4:-1]
        if trainset not in TRAINSETS or strategy not in STRATEGIES:
            log.warning("skipping %s: not {trainset}/{arch}/{strategy}/{dataset}.parquet", p)
            continue
        rows.append(dict(trainset=trainset, arch=arch, strategy=strategy, dataset=p.stem, path=str(p)))
    return pd.DataFrame(rows, columns=["trainset", "arch", "strategy", "dataset", "path"])


def _role(trainset: str, dataset: str) -> str:
    if dataset == trainset:
        return "original"
    if dataset in UNSEEN:
        return "unseen"
    if dataset in SPECIALIZED.get(trainset, ()):
        return "specialized"
    return "other"


def collect_metrics(prediction_paths_table: pd.DataFrame, n_boot: int, seed: int,
                    level: float = 0.95) -> pd.DataFrame:
    """Metrics of every prediction file: one row per (detector, test set).

    Parameters
    ----------
    prediction_paths_table : DataFrame
        ``trainset, arch, strategy, dataset, path`` (see :func:`find_predictions`).
    n_boot : int
        Bootstrap replicates for the intervals.
    seed : int
        Base seed. Each file's bootstrap seed is derived from it and the file's key, so a row does not
        change when other files are added or removed.
    level : float
        Interval coverage.

    Returns
    -------
    DataFrame
        ``detector, arch, trainset, strategy, dataset, role`` (original / unseen / specialized /
        other), ``path`` and every key of :func:`dfstudy.metrics.evaluate_predictions`.
    """
    from tqdm.auto import tqdm

    rows = []
    for r in tqdm(list(prediction_paths_table.itertuples(index=False)), desc="metrics", file=sys.stderr,
                  disable=None):
        key = f"{r.trainset}/{r.arch}/{r.strategy}/{r.dataset}"
        file_seed = int(np.random.SeedSequence([seed, zlib.crc32(key.encode())]).generate_state(1)[0])
        pred = pd.read_parquet(r.path, columns=["image_id", "video_id", "label", "score"])
        m = evaluate_predictions(pred, n_boot=n_boot, seed=file_seed, level=level)
        rows.append(dict(detector=detector_name(r.arch, r.trainset, r.strategy), arch=r.arch,
                         trainset=r.trainset, strategy=r.strategy, dataset=r.dataset,
                         role=_role(r.trainset, r.dataset), path=str(r.path), **m))
    out = pd.DataFrame(rows)
    if out.empty:
        log.warning("no prediction files")
    return out


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _detector_meta(detectors) -> pd.DataFrame:
    meta = pd.DataFrame([(d, *parse_detector(d)) for d in detectors],
                        columns=["detector", "architecture", "train_set", "strategy"])
    arch_rank = {a: i for i, a in enumerate(ARCHITECTURES)}
    meta["_a"] = meta.architecture.map(lambda a: arch_rank.get(a, len(ARCHITECTURES)))
    meta["_n"] = meta.detector.str[-1].astype(int)
    return (meta.sort_values(["_a", "architecture", "_n"], kind="stable")
                .drop(columns=["_a", "_n"]).set_index("detector"))


def accuracy_wide(metrics: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """Detector x dataset matrix of one metric, plus ``original_accuracy`` (own test split's value)."""
    if metrics.empty:
        return pd.DataFrame(columns=["original_accuracy"])
    wide = metrics.pivot_table(index="detector", columns="dataset", values=column, aggfunc="first")
    wide.columns.name = None
    train = pd.Series({d: parse_detector(d)[1] for d in wide.index})
    wide["original_accuracy"] = [wide.at[d, t] if t in wide.columns else np.nan
                                 for d, t in train.items()]
    return wide


def _rank(df: pd.DataFrame, by: str, ascending: bool) -> pd.DataFrame:
    key = _clean(df[by]) if ascending else -_clean(df[by])
    out = df.assign(_k=key).sort_values(["_k", "detector"], na_position="last", kind="stable")
    ranks = pd.array([pd.NA] * len(out), dtype="Int64")
    ok = out["_k"].notna().to_numpy()
    ranks[ok] = np.arange(1, ok.sum() + 1)
    out.insert(0, "rank", ranks)
    return out.drop(columns="_k").reset_index(drop=True)


def _unseen_sets(wide: pd.DataFrame) -> list[str]:
    return [u for u in UNSEEN if u in wide.columns and wide[u].notna().any()]


def _full_tables(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Unfiltered, unranked Tables IV-VII (all candidate detectors), unrounded, indexed by detector."""
    wide = accuracy_wide(metrics)
    meta = _detector_meta(wide.index)
    wide = wide.reindex(meta.index)
    for c in (*UNSEEN, *SPECIALIZED["CELEB"], *SPECIALIZED["F2F"]):
        if c not in wide.columns:
            wide[c] = np.nan
    unseen = _unseen_sets(wide)

    t4 = meta.copy()
    t4["original_accuracy"] = wide["original_accuracy"]
    t4["architecture_average"] = t4.groupby("architecture", sort=False)["original_accuracy"] \
        .transform("mean")

    t5 = wide[["original_accuracy", *UNSEEN]].copy()
    t5["average"] = wide[unseen].mean(axis=1, skipna=False) if unseen else np.nan
    t5["degradation"] = t5["original_accuracy"] - t5["average"]

    t6 = t5[meta.train_set == "CELEB"].copy()
    t6["CELEB-M"] = wide["CELEB-M"]
    t6["specialized_degradation"] = t6["original_accuracy"] - t6["CELEB-M"]
    t6["degradation_difference"] = t6["degradation"] - t6["specialized_degradation"]

    t7 = t5[meta.train_set == "F2F"].copy()
    for c in ("FS-I", "NT-I"):
        t7[c] = wide.loc[t7.index, c]
    spec = [c for c in ("FS-I", "NT-I") if wide[c].notna().any()]
    t7["specialized_average"] = t7[spec].mean(axis=1, skipna=False) if spec else np.nan
    t7["specialized_degradation"] = t7["original_accuracy"] - t7["specialized_average"]
    t7["degradation_difference"] = t7["degradation"] - t7["specialized_degradation"]
    return dict(table4=t4, table5=t5, table6=t6, table7=t7)


def build_tables(metrics: pd.DataFrame, threshold: float = 30.0) -> dict[str, pd.DataFrame]:
    """Tables IV-VII from the long metrics table, unrounded, with the published column names.

    Parameters
    ----------
    metrics : DataFrame
        Output of :func:`collect_metrics` (needs ``detector, dataset, accuracy``).
    threshold : float
        Degradation (points) above which a detector enters Tables VI / VII (the study: 30).

    Returns
    -------
    dict
        ``table4`` .. ``table7`` (columns as in ``TABLE_COLUMNS``), and ``full5`` .. ``full7``: the same
        quantities for every candidate detector before the threshold (indexed by detector), used to
        compare with published rows whose detector falls under the threshold here.
    """
    full = _full_tables(metrics)
    out = {"table4": full["table4"].reset_index()[TABLE_COLUMNS["table4"]]}
    t5 = _rank(full["table5"].reset_index(), "degradation", ascending=True)
    out["table5"] = t5[TABLE_COLUMNS["table5"]]
    for name in ("table6", "table7"):
        f = full[name]
        keep = _clean(f["degradation"]) > threshold
        out[name] = _rank(f[keep].reset_index(), "degradation_difference",
                          ascending=False)[TABLE_COLUMNS[name]]
    out.update(full5=full["table5"], full6=full["table6"], full7=full["table7"])
    return out


def round_table(df: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Round every float column as the paper does (:func:`round_paper`)."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = round_paper(out[c], decimals)
    return out


# --------------------------------------------------------------------------------------------------
# Published vs reproduced
# --------------------------------------------------------------------------------------------------


def load_reference(ref_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The published tables (``paper_table{4..7}_*.csv``) that exist in ``ref_dir``."""
    out = {}
    for name, fname in REFERENCE_FILES.items():
        p = Path(ref_dir) / fname
        if p.exists():
            out[name] = pd.read_csv(p)
        else:
            log.warning("no published %s (%s)", name, p)
    return out


def _ci_lookup(metrics: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    if metrics.empty:
        return {}
    return {(r.detector, r.dataset): (r.accuracy_ci_low, r.accuracy_ci_high)
            for r in metrics.itertuples(index=False)}


def compare_with_published(table: str, published: pd.DataFrame, tables: dict,
                           metrics: pd.DataFrame) -> pd.DataFrame:
    """Every numeric cell of a published table next to the reproduced value.

    Parameters
    ----------
    table : str
        ``table4`` .. ``table7``.
    published : DataFrame
        The published table (reference CSV).
    tables : dict
        Output of :func:`build_tables`.
    metrics : DataFrame
        The long metrics table (for the accuracy intervals).

    Returns
    -------
    DataFrame
        One row per (detector, column) of the published table, plus rows for detectors that enter the
        reproduced table but not the published one: ``detector, column, published, reproduced``
        (rounded as the paper), ``difference`` (reproduced - published, from the unrounded value),
        ``ci_low, ci_high, ci_half_width`` (video bootstrap of that accuracy; NaN for derived columns),
        ``published_outside_ci`` (published value outside [ci_low, ci_high]; NA where there is no
        interval or no reproduced value), ``in_published``, ``in_reproduced`` (row present in the
        reproduced table; for Tables VI / VII, degradation over the threshold here).
    """
    shown = tables[table].set_index("detector")
    # Values for every candidate detector, also those under the threshold here, so that a published
    # Table VI row is still compared cell by cell when its detector is not selected in the reproduction.
    full = tables.get("full" + table[-1], shown)
    cols = [c for c in published.columns
            if c != "detector" and pd.api.types.is_numeric_dtype(published[c])]
    ci = _ci_lookup(metrics)
    pub = published.set_index("detector")
    detectors = list(pub.index) + [d for d in shown.index if d not in pub.index]
    rows = []
    for d in detectors:
        for c in cols:
            p = pub.at[d, c] if d in pub.index else np.nan
            src = shown if (c == "rank" or d not in full.index) else full
            r = src.at[d, c] if (d in src.index and c in src.columns) else np.nan
            r = float(r) if r is not pd.NA and r is not None else np.nan
            dataset = parse_detector(d)[1] if c == "original_accuracy" else c
            lo, hi = ci.get((d, dataset), (np.nan, np.nan)) if c != "rank" else (np.nan, np.nan)
            if c not in ("original_accuracy", *UNSEEN, "CELEB-M", "FS-I", "NT-I"):
                lo = hi = np.nan
            outside = pd.NA
            if np.isfinite(lo) and np.isfinite(hi) and np.isfinite(p) and np.isfinite(r):
                outside = bool(p < lo or p > hi)
            rows.append(dict(detector=d, column=c, published=p,
                             reproduced=r if c == "rank" else round_paper(r),
                             difference=round_paper(r - p), ci_low=lo, ci_high=hi,
                             ci_half_width=(hi - lo) / 2, published_outside_ci=outside,
                             in_published=d in pub.index, in_reproduced=d in shown.index))
    out = pd.DataFrame(rows, columns=["detector", "column", "published", "reproduced", "difference",
                                      "ci_low", "ci_high", "ci_half_width", "published_outside_ci",
                                      "in_published", "in_reproduced"])
    out["published_outside_ci"] = out["published_outside_ci"].astype("boolean")
    return out


def degradation_spearman(published5: pd.DataFrame, table5: pd.DataFrame) -> dict:
    """Spearman correlation of published and reproduced Table V degradations (common detectors)."""
    j = published5[["detector", "degradation"]].merge(
        table5[["detector", "degradation"]], on="detector", suffixes=("_published", "_reproduced"))
    j = j.dropna()
    if len(j) < 3:
        return dict(rho=math.nan, pvalue=math.nan, n=int(len(j)),
                    note="fewer than 3 detectors in common: correlation undefined")
    res = spearmanr(j["degradation_published"], j["degradation_reproduced"])
    return dict(rho=float(res.statistic), pvalue=float(res.pvalue), n=int(len(j)), note="")


# --------------------------------------------------------------------------------------------------
# Beyond the study: Coefficient of Variation of AP
# --------------------------------------------------------------------------------------------------


def cv_ap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Coefficient of Variation of average precision across the unseen sets, per detector.

    ``cv_ap = std / mean`` of the detector's AP on FS, NT, DF and DFD (the sets present), with the
    **population** standard deviation (``ddof=0``): the four sets are the whole set of conditions being
    summarised, not a sample from a larger one. The layer-aggregation paper (seeds/000) proposes CoV of AP
    across test sets to rank detectors that are tested on other generators than they were trained on;
    the stored text of that paper names the measure but does not spell out the estimator, so
    ``cv_ap_sample`` (``ddof=1``, larger by sqrt(n/(n-1))) is given as well. Lower CoV = more uniform
    performance across unseen generators; note it says nothing about the level (a detector at AP 0.5
    everywhere has CoV 0), so read it next to ``mean_ap``.

    Returns
    -------
    DataFrame
        ``detector, architecture, train_set, strategy, ap_FS .. ap_DFD, n_sets, mean_ap, std_ap,
        cv_ap, cv_ap_sample``, sorted by ``cv_ap`` ascending.
    """
    cols = ["detector", "architecture", "train_set", "strategy", *(f"ap_{u}" for u in UNSEEN),
            "n_sets", "mean_ap", "std_ap", "cv_ap", "cv_ap_sample"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    ap = accuracy_wide(metrics, "ap").drop(columns="original_accuracy")
    ap = ap.reindex(columns=list(UNSEEN))
    meta = _detector_meta(ap.index)
    ap = ap.reindex(meta.index)
    present = [u for u in UNSEEN if ap[u].notna().any()]
    vals = ap[present]
    out = meta.reset_index()
    for u in UNSEEN:
        out[f"ap_{u}"] = ap[u].to_numpy()
    complete = vals.notna().all(axis=1).to_numpy() if present else np.zeros(len(out), bool)
    out["n_sets"] = vals.notna().sum(axis=1).to_numpy() if present else 0
    mean = vals.mean(axis=1).to_numpy() if present else np.full(len(out), np.nan)
    std0 = vals.std(axis=1, ddof=0).to_numpy() if present else np.full(len(out), np.nan)
    std1 = vals.std(axis=1, ddof=1).to_numpy() if present else np.full(len(out), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_ap"] = np.where(complete, mean, np.nan)
        out["std_ap"] = np.where(complete, std0, np.nan)
        out["cv_ap"] = np.where(complete, std0 / mean, np.nan)
        out["cv_ap_sample"] = np.where(complete, std1 / mean, np.nan)
    return out.sort_values(["cv_ap", "detector"], na_position="last", kind="stable")[cols] \
        .reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------------


def _fmt(x: float, nd: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def finding1(table5: pd.DataFrame, drop_points: float = 20.0) -> dict:
    """Finding 1 (no zero-shot generalisation; few-shot fine-tuning mitigates), judged on Table V.

    Zero-shot part: *supported* when more than half of the original (not fine-tuned) detectors lose more
    than ``drop_points`` points from original accuracy to average unseen accuracy. Few-shot part:
    *supported* when, paired within each congenetic group (same architecture and training set), both the
    transfer and the merge detectors degrade less than their original on average. The mean change of the
    average unseen accuracy is reported too, because a smaller degradation can also come from a lower
    original accuracy rather than from better unseen accuracy.

    Parameters
    ----------
    table5 : DataFrame
        ``detector, original_accuracy, average, degradation`` (reproduced or published Table V).
    drop_points : float
        Degradation (points) counted as "does not generalise" (the study's own yardstick: 20).
    """
    t = table5.dropna(subset=["degradation"]).copy()
    statement = ("Existing deepfake detectors are not generalizable in zero-shot settings, and the "
                 "performance degradation can be mitigated in few-shot settings.")
    if t.empty:
        return dict(statement=statement, verdict="not testable", zero_shot="not testable",
                    few_shot="not testable", numbers={},
                    sentence="Finding 1 is not testable: no detector has both original and unseen accuracies.")
    parsed = pd.DataFrame([parse_detector(d) for d in t.detector], index=t.index,
                          columns=["architecture", "train_set", "strategy"])
    t = t.join(parsed.drop(columns=[c for c in parsed.columns if c in t.columns]))
    orig = t[t.strategy == "original"]
    share_all = float((t.degradation > drop_points).mean())
    share_orig = float((orig.degradation > drop_points).mean()) if len(orig) else math.nan
    zero = ("supported" if share_orig > 0.5 else "not supported") if len(orig) else "not testable"

    base = orig.set_index(["architecture", "train_set"])
    nums = dict(n_detectors=int(len(t)), drop_points=drop_points,
                share_all_over=share_all, n_original=int(len(orig)), share_original_over=share_orig,
                mean_degradation_original=float(orig.degradation.mean()) if len(orig) else math.nan)
    parts, few_ok = [], []
    for strat in ("transfer", "merge"):
        s = t[t.strategy == strat].set_index(["architecture", "train_set"])
        common = s.index.intersection(base.index)
        if len(common) == 0:
            nums[strat] = dict(n_pairs=0)
            continue
        dd = s.loc[common, "degradation"] - base.loc[common, "degradation"]
        da = s.loc[common, "average"] - base.loc[common, "average"]
        nums[strat] = dict(n_pairs=int(len(common)), mean_degradation=float(s.loc[common, "degradation"].mean()),
                           mean_change_degradation=float(dd.mean()), share_less_degraded=float((dd < 0).mean()),
                           mean_change_unseen_average=float(da.mean()))
        few_ok.append(bool(dd.mean() < 0))
        parts.append(f"{strat} {_fmt(s.loc[common, 'degradation'].mean())} vs original "
                     f"{_fmt(base.loc[common, 'degradation'].mean())} points over {len(common)} pairs "
                     f"(less degraded in {int((dd < 0).sum())}/{len(common)}; average unseen accuracy "
                     f"{da.mean():+.2f} points)")
    few = ("supported" if all(few_ok) else "not supported") if len(few_ok) == 2 else "not testable"
    verdict = "supported" if zero == few == "supported" else (
        "not testable" if "not testable" in (zero, few) and "not supported" not in (zero, few)
        else "not supported")
    sentence = (
        f"Finding 1 is {verdict}. Zero-shot: {_fmt(100 * share_orig, 0)} % of the {len(orig)} original "
        f"detectors (and {_fmt(100 * share_all, 0)} % of all {len(t)}) lose more than {drop_points:g} "
        f"points from original to average unseen accuracy (mean degradation of the originals "
        f"{_fmt(nums['mean_degradation_original'])} points): {zero}. Few-shot mitigation, mean "
        f"degradation {'; '.join(parts) if parts else 'n/a'}: {few}.")
    return dict(statement=statement, verdict=verdict, zero_shot=zero, few_shot=few, numbers=nums,
                sentence=sentence)


def finding2(table6: pd.DataFrame, table7: pd.DataFrame, margin: float = 10.0,
             threshold: float = 30.0) -> dict:
    """Finding 2 (method-specific properties learnt, identity not), judged on Tables VI and VII.

    Method part (Table VI): *supported* when CELEB-M accuracy exceeds the average unseen accuracy
    (degradation difference > 0) for more than half of the CELEB-trained detectors in Table VI. Identity
    part (Table VII): *supported* when FS-I / NT-I are not easier than FS / NT by more than ``margin``
    points: the mean paired gain ``mean(FS-I - FS, NT-I - NT)`` over the Table VII detectors is below
    ``margin`` (the study calls differences under 10 points "little-to-no impact").
    """
    statement = ("Deepfake detectors learn method-specific properties (CELEB-M is easier than the other "
                 "unseen sets) rather than human identities.")
    nums: dict = dict(threshold=threshold, margin=margin)
    t6 = table6.dropna(subset=["degradation_difference"])
    if len(t6):
        pos = t6.degradation_difference > 0
        nums.update(n_table6=int(len(t6)), n_celebm_easier=int(pos.sum()),
                    mean_degradation_difference_6=float(t6.degradation_difference.mean()),
                    n_over_margin_6=int((t6.degradation_difference > margin).sum()))
        method = "supported" if pos.mean() > 0.5 else "not supported"
        s_method = (f"CELEB-M accuracy exceeds the average unseen accuracy for {int(pos.sum())} of "
                    f"{len(t6)} CELEB-trained detectors with degradation > {threshold:g} (mean degradation "
                    f"difference {t6.degradation_difference.mean():+.2f} points, over {margin:g} for "
                    f"{nums['n_over_margin_6']}): {method}")
    else:
        method = "not testable"
        s_method = (f"no CELEB-trained detector with degradation > {threshold:g} has a CELEB-M accuracy: "
                    "not testable")
    t7 = table7.dropna(subset=["degradation_difference"])
    gains = []
    for a, b in (("FS-I", "FS"), ("NT-I", "NT")):
        if a in t7 and b in t7:
            gains.append(t7[a] - t7[b])
    gain = pd.concat(gains, axis=1).mean(axis=1, skipna=False).dropna() if gains else pd.Series(dtype=float)
    if len(gain):
        nums.update(n_table7=int(len(t7)), mean_identity_gain=float(gain.mean()),
                    n_identity_easier=int((gain > 0).sum()),
                    mean_degradation_difference_7=float(t7.degradation_difference.mean()))
        ident = "supported" if gain.mean() < margin else "not supported"
        s_ident = (f"for the {len(gain)} F2F-trained detectors with degradation > {threshold:g}, accuracy "
                   f"on FS-I/NT-I minus accuracy on FS/NT averages {gain.mean():+.2f} points (positive, "
                   f"i.e. same identities easier, for {int((gain > 0).sum())}; mean degradation difference "
                   f"{t7.degradation_difference.mean():+.2f} points), "
                   f"{'within' if gain.mean() < margin else 'beyond'} the {margin:g}-point yardstick: {ident}")
    else:
        ident = "not testable"
        s_ident = (f"no F2F-trained detector with degradation > {threshold:g} has FS-I/NT-I accuracies: "
                   "not testable")
    verdict = "supported" if method == ident == "supported" else (
        "not supported" if "not supported" in (method, ident) else "not testable")
    sentence = f"Finding 2 is {verdict}. Method: {s_method}. Identity: {s_ident}."
    return dict(statement=statement, verdict=verdict, method_specific=method, not_identity=ident,
                numbers=nums, sentence=sentence)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _cell(v) -> str:
    if v is None or v is pd.NA:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "—" if not np.isfinite(v) else f"{v:.2f}"
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    """Markdown table with two-decimal floats and an em dash for missing values."""
    if df.empty:
        return "_(no rows)_"
    text = df.astype(object).map(_cell)
    align = ["right" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
             else "left" for c in df.columns]
    return text.to_markdown(index=False, disable_numparse=True, colalign=align)


def _write_table(df: pd.DataFrame, out_dir: Path, name: str, caption: str) -> None:
    df.to_csv(out_dir / f"{name}.csv", index=False, float_format="%.2f")
    (out_dir / f"{name}.md").write_text(f"# {caption}\n\n{to_markdown(df)}\n")
    (out_dir / f"{name}.tex").write_text(
        df.to_latex(index=False, float_format="%.2f", na_rep="--", escape=True, caption=caption,
                    label=f"tab:{name}"))


def _vs_summary(table: str, cmp: pd.DataFrame, spearman: dict | None,
                level: float | None = None) -> tuple[str, list[dict]]:
    pub = cmp[cmp.in_published]
    acc = pub[pub.ci_low.notna()]
    have = pub.reproduced.notna()
    outside = acc[acc.published_outside_ci.fillna(False).astype(bool)]
    vals = pub[pub.column != "rank"].groupby("detector").reproduced.apply(lambda v: v.notna().any())
    missing = sorted(vals.index[~vals])
    lines = [f"# {TITLES[table]}: published vs reproduced", "",
             f"- published cells compared: {int(len(pub))}; reproduced values available for "
             f"{int(have.sum())}",
             f"- mean |difference|: {_fmt(pub.difference.abs().mean())} points (accuracy cells with an "
             f"interval: {_fmt(acc.difference.abs().mean())})"]
    if missing:
        lines.append(f"- detectors without reproduced values: {', '.join(missing)}")
    extra = sorted(set(cmp.detector[~cmp.in_published]))
    if extra:
        lines.append(f"- in the reproduced table but not the published one: {', '.join(extra)}")
    nope = sorted(set(pub.detector[~pub.in_reproduced]) - set(missing))
    if nope and table in ("table6", "table7"):
        lines.append(f"- published rows whose detector is not over the threshold here (values still "
                     f"compared): {', '.join(nope)}")
    if spearman is not None:
        lines.append(f"- Spearman correlation of the degradations (rankings): rho = "
                     f"{_fmt(spearman['rho'], 3)}, p = {_fmt(spearman['pvalue'], 4)}, n = {spearman['n']}"
                     + (f" ({spearman['note']})" if spearman["note"] else ""))
    level = f"{100 * level:g} %" if level else "95 %"
    lines.append(f"- accuracies whose published value lies outside the reproduced {level} video-bootstrap "
                 f"interval (|difference| beyond the interval on that side): {len(outside)} of "
                 f"{int(acc.published_outside_ci.notna().sum())}" + (":" if len(outside) else ""))
    lines += [f"  - {r.detector} {r.column}: published {r.published:.2f}, reproduced {r.reproduced:.2f} "
              f"[{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in outside.itertuples()]
    flagged = [dict(detector=r.detector, column=r.column, published=float(r.published),
                    reproduced=float(r.reproduced), ci_low=float(r.ci_low), ci_high=float(r.ci_high))
               for r in outside.itertuples()]
    return "\n".join(lines) + "\n", flagged


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def write_outputs(metrics: pd.DataFrame, reference: dict[str, pd.DataFrame], out_dir: str | Path,
                  threshold: float = 30.0, drop_points: float = 20.0, margin: float = 10.0) -> dict:
    """Write every table, comparison, CV of AP and the findings; return the findings dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics.to_parquet(out_dir / "metrics.parquet", index=False)
    tables = build_tables(metrics, threshold)
    for name in ("table4", "table5", "table6", "table7"):
        caption = TITLES[name] + (f", degradation > {threshold:g}" if name in ("table6", "table7") else "")
        _write_table(round_table(tables[name]), out_dir, name, caption)

    findings: dict = dict(threshold=threshold, unseen_sets=_unseen_sets(accuracy_wide(metrics)),
                          detectors=sorted(tables["table4"].detector), published_outside_ci={})
    for name, pub in reference.items():
        cmp = compare_with_published(name, pub, tables, metrics)
        sp = degradation_spearman(pub, tables["table5"]) if name == "table5" else None
        if sp is not None:
            findings["table5_spearman"] = sp
        cmp.to_csv(out_dir / f"{name}_vs_published.csv", index=False)
        lv = metrics["ci_level"].iloc[0] if "ci_level" in metrics and len(metrics) else None
        summary, flagged = _vs_summary(name, cmp, sp, lv)
        findings["published_outside_ci"][name] = flagged
        (out_dir / f"{name}_vs_published.md").write_text(summary + "\n" + to_markdown(cmp) + "\n")

    cv = cv_ap(metrics)
    cv.to_csv(out_dir / "cv_ap.csv", index=False, float_format="%.4f")

    findings["finding1"] = finding1(tables["table5"], drop_points)
    findings["finding2"] = finding2(tables["table6"], tables["table7"], margin, threshold)
    if {"table5", "table6", "table7"} <= set(reference):
        # The same rules applied to the published tables: they should reproduce the study's own claims.
        findings["published_check"] = dict(
            finding1=finding1(reference["table5"], drop_points)["verdict"],
            finding2=finding2(reference["table6"], reference["table7"], margin, threshold)["verdict"])
    findings = _jsonable(findings)
    (out_dir / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")
    md = ["# Findings 1 and 2, computed from the reproduced tables", ""]
    for k in ("finding1", "finding2"):
        md += [f"**{k[:-1].capitalize()} {k[-1]}** (study: _{findings[k]['statement']}_)", "",
               findings[k]["sentence"], ""]
    if "table5_spearman" in findings:
        sp = findings["table5_spearman"]
        md += [f"Table V degradation ranking vs published: Spearman rho = {_fmt(sp['rho'], 3)} "
               f"(n = {sp['n']}).", ""]
    if "published_check" in findings:
        pc = findings["published_check"]
        md += [f"Same rules on the published tables: Finding 1 {pc['finding1']}, Finding 2 "
               f"{pc['finding2']}.", ""]
    (out_dir / "findings.md").write_text("\n".join(md))
    return findings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.tables", description=__doc__.splitlines()[0])
    p.add_argument("--predictions", required=True,
                   help="root of {trainset}/{arch}/{strategy}/{dataset}.parquet")
    p.add_argument("--reference", default=None, help="folder with the published paper_table*.csv")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threshold", type=float, default=30.0,
                   help="degradation (points) above which detectors enter Tables VI and VII")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--level", type=float, default=0.95, help="bootstrap interval coverage")
    p.add_argument("--drop-points", type=float, default=20.0,
                   help="Finding 1: degradation counted as no zero-shot generalisation")
    p.add_argument("--margin", type=float, default=10.0,
                   help="Finding 2: largest identity gain (points) still read as 'no identity learning'")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    paths = find_predictions(args.predictions)
    log.info("%d prediction files under %s", len(paths), args.predictions)
    metrics = collect_metrics(paths, n_boot=args.n_boot, seed=args.seed, level=args.level)
    reference = load_reference(args.reference) if args.reference else {}
    findings = write_outputs(metrics, reference, args.out_dir, threshold=args.threshold,
                             drop_points=args.drop_points, margin=args.margin)
    for k in ("finding1", "finding2"):
        log.info("%s", findings[k]["sentence"])


if __name__ == "__main__":
    main()
