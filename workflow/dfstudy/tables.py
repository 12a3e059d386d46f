"""The study's Tables IV-VII from prediction files, set against the published numbers.

Pipeline: prediction files -> :func:`collect_metrics` (one row of metrics per detector x test set, with
video-bootstrap intervals) -> :func:`build_tables` (Tables IV-VII, unrounded) -> rounding as the paper
rounds -> CSV / Markdown / LaTeX, plus "published vs reproduced" per table, the Coefficient of Variation
of AP across the unseen sets, and Findings 1 and 2 as sentences computed from the tables.

Definitions (the study's, Section IV):

* detector study name ``<Arch><n>``: n = 1 original / 2 transfer / 3 merge on CELEB, 4-6 likewise on F2F
  (:class:`dfstudy.study.Study`, which also names the training, unseen and RQ2 sets of a run: the paper's by
  default, the config's when the workflow passes ``--study``);
* original accuracy: accuracy on the detector's own training set's test split (CELEB or F2F);
* average: mean accuracy over the unseen sets (the paper: FS, NT, DF, DFD); degradation = original -
  average (points); Table V ranks by degradation ascending (ties broken by detector name);
* Table VI: detectors of a training set with specialised sets (the paper: CELEB, CELEB-M) whose
  degradation > threshold (30); specialised degradation = original - specialised accuracy; degradation
  difference = degradation - specialised degradation; ranked descending;
* Table VII: the same for the same-identity sets (the paper: F2F, FS-I and NT-I); with two or more sets
  per training set, the specialised accuracy is their mean (``specialized_average``).

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
import sys
import zlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from dfstudy.metrics import evaluate_predictions
from dfstudy.study import PAPER, Study, add_argument

log = logging.getLogger(__name__)

__all__ = [
    "round_paper", "prediction_table", "collect_metrics", "accuracy_wide", "table_columns", "titles",
    "build_tables", "round_table", "compare_with_published", "cv_ap", "finding1", "finding2",
    "load_reference", "write_outputs", "main",
]

# Table VI holds the specialised sets (RQ2, same method), Table VII the same-identity sets.
RQ2_TABLES = {"table6": "specialised", "table7": "same_identity"}
REFERENCE_FILES = {
    "table4": "paper_table4_original_accuracy.csv",
    "table5": "paper_table5_unseen_accuracy.csv",
    "table6": "paper_table6_celeb_m.csv",
    "table7": "paper_table7_same_identity.csv",
}


def _rq2_sets(study: Study, table: str) -> dict[str, tuple[str, ...]]:
    """Training set -> its Table VI (specialised) or Table VII (same-identity) test sets."""
    return getattr(study, RQ2_TABLES[table])


def table_columns(study: Study = PAPER) -> dict[str, list[str]]:
    """Columns of Tables IV-VII: the study's unseen sets in Table V, its RQ2 sets in Tables VI and VII."""
    t5 = ["rank", "detector", "original_accuracy", *study.unseen, "average", "degradation"]
    out = {"table4": ["detector", "architecture", "train_set", "strategy", "original_accuracy",
                      "architecture_average"], "table5": t5}
    for table in RQ2_TABLES:
        by_trainset = _rq2_sets(study, table)
        several = any(len(sets) > 1 for sets in by_trainset.values())
        out[table] = [*t5, *(d for sets in by_trainset.values() for d in sets),
                      *(["specialized_average"] if several else []), "specialized_degradation",
                      "degradation_difference"]
    return out


def titles(study: Study = PAPER) -> dict[str, str]:
    """Table captions, naming the study's RQ2 training sets and test sets."""

    def rq2(table):
        by_trainset = _rq2_sets(study, table)
        sets = " / ".join(d for s in by_trainset.values() for d in s) or "none"
        return f"{' and '.join(by_trainset) or 'no'}-trained detectors on {sets}"

    return {
        "table4": "Table IV: accuracy (%) on the original test set",
        "table5": "Table V: generalisability to unseen datasets (RQ1)",
        "table6": f"Table VI: {rq2('table6')}, same synthesis method (RQ2)",
        "table7": f"Table VII: {rq2('table7')}, same identities (RQ2)",
    }


# the paper's captions, and the paper's detector names, for dfstudy.report
TITLES = titles(PAPER)
detector_name = PAPER.detector_name
# Float noise must neither break ties nor push an exact 30.00 over the threshold.
_CLEAN_DECIMALS = 9


# --------------------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------------------


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


def prediction_table(paths, study: Study = PAPER) -> pd.DataFrame:
    """The detector and test set of each prediction file ``.../{trainset}/{arch}/{strategy}/{dataset}.parquet``.

    Only the files given are read (the rule lists them), so stale files of an earlier run never enter the
    tables; a file whose detector or test set is not part of ``study`` is an error.

    Returns
    -------
    DataFrame
        ``trainset, arch, strategy, dataset, path``, in the order given.
    """
    rows = []
    for p in map(Path, paths):
        trainset, arch, strategy = p.parts[-4:-1]
        key = (arch, trainset, strategy)
        if key not in study.detectors() or p.stem not in (trainset, *study.unseen,
                                                           *study.specialised.get(trainset, ()),
                                                           *study.same_identity.get(trainset, ())):
            raise ValueError(f"{p}: not a prediction of this study's detectors and test sets "
                             "({trainset}/{arch}/{strategy}/{dataset}.parquet)")
        rows.append(dict(trainset=trainset, arch=arch, strategy=strategy, dataset=p.stem, path=str(p)))
    return pd.DataFrame(rows, columns=["trainset", "arch", "strategy", "dataset", "path"])


def _role(study: Study, trainset: str, dataset: str) -> str:
    if dataset == trainset:
        return "original"
    if dataset in study.unseen:
        return "unseen"
    if dataset in study.specialised.get(trainset, ()):
        return "specialized"
    return "other"


def collect_metrics(prediction_paths_table: pd.DataFrame, n_boot: int, seed: int,
                    level: float = 0.95, study: Study = PAPER) -> pd.DataFrame:
    """Metrics of every prediction file: one row per (detector, test set).

    Parameters
    ----------
    prediction_paths_table : DataFrame
        ``trainset, arch, strategy, dataset, path`` (see :func:`prediction_table`).
    n_boot : int
        Bootstrap replicates for the intervals.
    seed : int
        Base seed. Each file's bootstrap seed is derived from it and the file's key, so a row does not
        change when other files are added or removed.
    level : float
        Interval coverage.
    study : Study
        Names the detectors and the role of each test set.

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
        rows.append(dict(detector=study.detector_name(r.arch, r.trainset, r.strategy), arch=r.arch,
                         trainset=r.trainset, strategy=r.strategy, dataset=r.dataset,
                         role=_role(study, r.trainset, r.dataset), path=str(r.path), **m))
    out = pd.DataFrame(rows)
    if out.empty:
        log.warning("no prediction files")
    return out


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _detector_meta(detectors, study: Study) -> pd.DataFrame:
    """Architecture, training set and strategy of each detector, in the paper's table order."""
    meta = pd.DataFrame([(d, *study.parse_detector(d)) for d in detectors],
                        columns=["detector", "architecture", "train_set", "strategy"])
    meta["_a"] = study.rank(meta.architecture, study.table_architectures)
    meta["_n"] = [study.number(t, s) for t, s in zip(meta.train_set, meta.strategy)]
    return (meta.sort_values(["_a", "architecture", "_n"], kind="stable")
                .drop(columns=["_a", "_n"]).set_index("detector"))


def accuracy_wide(metrics: pd.DataFrame, column: str = "accuracy", study: Study = PAPER) -> pd.DataFrame:
    """Detector x dataset matrix of one metric, plus ``original_accuracy`` (own test split's value)."""
    if metrics.empty:
        return pd.DataFrame(columns=["original_accuracy"])
    wide = metrics.pivot_table(index="detector", columns="dataset", values=column, aggfunc="first")
    wide.columns.name = None
    train = pd.Series({d: study.parse_detector(d)[1] for d in wide.index})
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


def _unseen_sets(wide: pd.DataFrame, study: Study) -> list[str]:
    return [u for u in study.unseen if u in wide.columns and wide[u].notna().any()]


def _rq2_table(t5: pd.DataFrame, wide: pd.DataFrame, meta: pd.DataFrame,
               by_trainset: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Table VI or VII before the threshold: Table V's detectors of the training sets that have RQ2 sets.

    A detector's specialised accuracy is its accuracy on its training set's RQ2 set, or their mean when
    there are several (``specialized_average``); a set absent for every detector is left out of the mean.
    """
    t = t5[meta.train_set.isin(list(by_trainset))].copy()
    for c in (d for sets in by_trainset.values() for d in sets):
        t[c] = wide.loc[t.index, c]
    specialised = pd.Series(np.nan, index=t.index)
    for trainset, sets in by_trainset.items():
        own = t.index[meta.loc[t.index, "train_set"] == trainset]
        present = [c for c in sets if wide[c].notna().any()]
        if present:
            specialised[own] = wide.loc[own, present].mean(axis=1, skipna=False)
    if any(len(sets) > 1 for sets in by_trainset.values()):
        t["specialized_average"] = specialised
    t["specialized_degradation"] = t["original_accuracy"] - specialised
    t["degradation_difference"] = t["degradation"] - t["specialized_degradation"]
    return t


def _full_tables(metrics: pd.DataFrame, study: Study) -> dict[str, pd.DataFrame]:
    """Unfiltered, unranked Tables IV-VII (all candidate detectors), unrounded, indexed by detector."""
    wide = accuracy_wide(metrics, study=study)
    meta = _detector_meta(wide.index, study)
    wide = wide.reindex(meta.index)
    for c in study.evaluation_sets:
        if c not in wide.columns:
            wide[c] = np.nan
    unseen = _unseen_sets(wide, study)

    t4 = meta.copy()
    t4["original_accuracy"] = wide["original_accuracy"]
    t4["architecture_average"] = t4.groupby("architecture", sort=False)["original_accuracy"] \
        .transform("mean")

    t5 = wide[["original_accuracy", *study.unseen]].copy()
    t5["average"] = wide[unseen].mean(axis=1, skipna=False) if unseen else np.nan
    t5["degradation"] = t5["original_accuracy"] - t5["average"]
    rq2 = {table: _rq2_table(t5, wide, meta, _rq2_sets(study, table)) for table in RQ2_TABLES}
    return dict(table4=t4, table5=t5, **rq2)


def build_tables(metrics: pd.DataFrame, threshold: float = 30.0, study: Study = PAPER) -> dict[str, pd.DataFrame]:
    """Tables IV-VII from the long metrics table, unrounded, with the published column names.

    Parameters
    ----------
    metrics : DataFrame
        Output of :func:`collect_metrics` (needs ``detector, dataset, accuracy``).
    threshold : float
        Degradation (points) above which a detector enters Tables VI / VII (the study: 30).
    study : Study
        The detectors' names, the unseen sets (Table V) and the RQ2 sets (Tables VI and VII).

    Returns
    -------
    dict
        ``table4`` .. ``table7`` (columns as in :func:`table_columns`), and ``full5`` .. ``full7``: the
        same quantities for every candidate detector before the threshold (indexed by detector), used to
        compare with published rows whose detector falls under the threshold here.
    """
    full = _full_tables(metrics, study)
    columns = table_columns(study)
    out = {"table4": full["table4"].reset_index()[columns["table4"]]}
    t5 = _rank(full["table5"].reset_index(), "degradation", ascending=True)
    out["table5"] = t5[columns["table5"]]
    for name in ("table6", "table7"):
        f = full[name]
        keep = _clean(f["degradation"]) > threshold
        out[name] = _rank(f[keep].reset_index(), "degradation_difference",
                          ascending=False)[columns[name]]
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
    """(detector, table column) -> accuracy interval; a detector's own test set is ``original_accuracy``."""
    if metrics.empty:
        return {}
    out = {}
    for r in metrics.itertuples(index=False):
        out[(r.detector, r.dataset)] = (r.accuracy_ci_low, r.accuracy_ci_high)
        if r.dataset == r.trainset:
            out[(r.detector, "original_accuracy")] = (r.accuracy_ci_low, r.accuracy_ci_high)
    return out


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
            lo, hi = ci.get((d, c), (np.nan, np.nan))  # accuracy columns only
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


def cv_ap(metrics: pd.DataFrame, study: Study = PAPER) -> pd.DataFrame:
    """Coefficient of Variation of average precision across the unseen sets, per detector.

    ``cv_ap = std / mean`` of the detector's AP on the study's unseen sets (the paper: FS, NT, DF and DFD;
    those present), with the
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
        ``detector, architecture, train_set, strategy, ap_<unseen set> (ap_FS .. ap_DFD), n_sets, mean_ap,
        std_ap, cv_ap, cv_ap_sample``, sorted by ``cv_ap`` ascending.
    """
    unseen = list(study.unseen)
    cols = ["detector", "architecture", "train_set", "strategy", *(f"ap_{u}" for u in unseen),
            "n_sets", "mean_ap", "std_ap", "cv_ap", "cv_ap_sample"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    ap = accuracy_wide(metrics, "ap", study).drop(columns="original_accuracy")
    ap = ap.reindex(columns=unseen)
    meta = _detector_meta(ap.index, study)
    ap = ap.reindex(meta.index)
    present = [u for u in unseen if ap[u].notna().any()]
    vals = ap[present]
    out = meta.reset_index()
    for u in unseen:
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


def finding1(table5: pd.DataFrame, drop_points: float = 20.0, study: Study = PAPER) -> dict:
    """Finding 1 (no zero-shot generalisation; few-shot fine-tuning mitigates), judged on Table V.

    Zero-shot part: *supported* when more than half of the original (not fine-tuned) detectors lose more
    than ``drop_points`` points from original accuracy to average unseen accuracy (over the study's unseen
    sets in ``table5``). Few-shot part: *supported* when, paired within each congenetic group (same
    architecture and training set), the detectors of every fine-tuning strategy (the paper: transfer and
    merge) degrade less than their original on average. The mean change of the
    average unseen accuracy is reported too, because a smaller degradation can also come from a lower
    original accuracy rather than from better unseen accuracy.

    Parameters
    ----------
    table5 : DataFrame
        ``detector, original_accuracy, average, degradation`` (reproduced or published Table V).
    drop_points : float
        Degradation (points) counted as "does not generalise" (the study's own yardstick: 20).
    study : Study
        Names the detectors (the published table: :data:`dfstudy.study.PAPER`) and the unseen sets.
    """
    t = table5.dropna(subset=["degradation"]).copy()
    unseen = [u for u in study.unseen if u in t.columns and t[u].notna().any()]
    statement = ("Existing deepfake detectors are not generalizable in zero-shot settings, and the "
                 "performance degradation can be mitigated in few-shot settings.")
    if t.empty:
        return dict(statement=statement, verdict="not testable", zero_shot="not testable",
                    few_shot="not testable", numbers={},
                    sentence="Finding 1 is not testable: no detector has both original and unseen accuracies.")
    parsed = pd.DataFrame([study.parse_detector(d) for d in t.detector], index=t.index,
                          columns=["architecture", "train_set", "strategy"])
    t = t.join(parsed.drop(columns=[c for c in parsed.columns if c in t.columns]))
    orig = t[t.strategy == "original"]
    share_all = float((t.degradation > drop_points).mean())
    share_orig = float((orig.degradation > drop_points).mean()) if len(orig) else math.nan
    zero = ("supported" if share_orig > 0.5 else "not supported") if len(orig) else "not testable"

    base = orig.set_index(["architecture", "train_set"])
    nums = dict(n_detectors=int(len(t)), drop_points=drop_points, unseen_sets=unseen,
                share_all_over=share_all, n_original=int(len(orig)), share_original_over=share_orig,
                mean_degradation_original=float(orig.degradation.mean()) if len(orig) else math.nan)
    parts, few_ok = [], []
    fine_tuned = [strat for strat in study.strategies if strat != "original"]
    for strat in fine_tuned:
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
    few = ("supported" if all(few_ok) else "not supported") if fine_tuned and len(few_ok) == len(fine_tuned) \
        else "not testable"
    verdict = "supported" if zero == few == "supported" else (
        "not testable" if "not testable" in (zero, few) and "not supported" not in (zero, few)
        else "not supported")
    sentence = (
        f"Finding 1 is {verdict}. Zero-shot: {_fmt(100 * share_orig, 0)} % of the {len(orig)} original "
        f"detectors (and {_fmt(100 * share_all, 0)} % of all {len(t)}) lose more than {drop_points:g} "
        f"points from original to average unseen accuracy over {', '.join(unseen)} (mean degradation of the "
        f"originals {_fmt(nums['mean_degradation_original'])} points): {zero}. Few-shot mitigation, mean "
        f"degradation {'; '.join(parts) if parts else 'n/a'}: {few}.")
    return dict(statement=statement, verdict=verdict, zero_shot=zero, few_shot=few, numbers=nums,
                sentence=sentence)


def _identity_gains(table7: pd.DataFrame, study: Study) -> pd.Series:
    """Per Table VII detector: mean over its same-identity sets of (that set - its unseen twin), e.g.
    mean(FS-I - FS, NT-I - NT); a detector missing one of its pairs gets none."""
    trainset = pd.Series([study.parse_detector(d)[1] for d in table7.detector], index=table7.index)
    gains = []
    for t, sets in study.same_identity.items():
        pairs = [(a, study.identity_pairs[a]) for a in sets if a in study.identity_pairs]
        pairs = [(a, b) for a, b in pairs if a in table7 and b in table7]
        rows = table7[trainset == t]
        if pairs and len(rows):
            gains.append(pd.concat([rows[a] - rows[b] for a, b in pairs], axis=1).mean(axis=1, skipna=False))
    return pd.concat(gains).dropna() if gains else pd.Series(dtype=float)


def finding2(table6: pd.DataFrame, table7: pd.DataFrame, margin: float = 10.0,
             threshold: float = 30.0, study: Study = PAPER) -> dict:
    """Finding 2 (method-specific properties learnt, identity not), judged on Tables VI and VII.

    Method part (Table VI): *supported* when the specialised set's accuracy (the paper: CELEB-M) exceeds
    the average unseen accuracy (degradation difference > 0) for more than half of the detectors in Table
    VI. Identity part (Table VII): *supported* when the same-identity sets are not easier than their
    unseen twins of the same method by more than ``margin`` points: the mean paired gain (the paper:
    ``mean(FS-I - FS, NT-I - NT)``) over the Table VII detectors is below ``margin`` (the study calls
    differences under 10 points "little-to-no impact").
    """
    specialised = "/".join(study.specialised_sets) or "the specialised set"
    method_trained = "/".join(study.specialised) or "no"
    same_identity = "/".join(study.same_identity_sets) or "the same-identity sets"
    twins = "/".join(study.identity_pairs.get(d, "?") for d in study.same_identity_sets) or "their unseen twins"
    identity_trained = "/".join(study.same_identity) or "no"
    statement = ("Deepfake detectors learn method-specific properties (CELEB-M is easier than the other "
                 "unseen sets) rather than human identities.")
    nums: dict = dict(threshold=threshold, margin=margin, specialised_sets=list(study.specialised_sets),
                      same_identity_sets=list(study.same_identity_sets))
    t6 = table6.dropna(subset=["degradation_difference"])
    if len(t6):
        pos = t6.degradation_difference > 0
        nums.update(n_table6=int(len(t6)), n_specialised_easier=int(pos.sum()),
                    mean_degradation_difference_6=float(t6.degradation_difference.mean()),
                    n_over_margin_6=int((t6.degradation_difference > margin).sum()))
        method = "supported" if pos.mean() > 0.5 else "not supported"
        s_method = (f"{specialised} accuracy exceeds the average unseen accuracy for {int(pos.sum())} of "
                    f"{len(t6)} {method_trained}-trained detectors with degradation > {threshold:g} (mean "
                    f"degradation difference {t6.degradation_difference.mean():+.2f} points, over {margin:g} "
                    f"for {nums['n_over_margin_6']}): {method}")
    else:
        method = "not testable"
        s_method = (f"no {method_trained}-trained detector with degradation > {threshold:g} has a {specialised} "
                    "accuracy: not testable")
    t7 = table7.dropna(subset=["degradation_difference"])
    gain = _identity_gains(t7, study)
    if len(gain):
        nums.update(n_table7=int(len(t7)), mean_identity_gain=float(gain.mean()),
                    n_identity_easier=int((gain > 0).sum()),
                    mean_degradation_difference_7=float(t7.degradation_difference.mean()))
        ident = "supported" if gain.mean() < margin else "not supported"
        s_ident = (f"for the {len(gain)} {identity_trained}-trained detectors with degradation > {threshold:g}, "
                   f"accuracy on {same_identity} minus accuracy on {twins} averages {gain.mean():+.2f} points "
                   f"(positive, i.e. same identities easier, for {int((gain > 0).sum())}; mean degradation "
                   f"difference {t7.degradation_difference.mean():+.2f} points), "
                   f"{'within' if gain.mean() < margin else 'beyond'} the {margin:g}-point yardstick: {ident}")
    else:
        ident = "not testable"
        s_ident = (f"no {identity_trained}-trained detector with degradation > {threshold:g} has {same_identity} "
                   "accuracies: not testable")
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


def _paper_named(tables: dict, study: Study) -> dict:
    """The tables' rows whose detector name means in the paper what it means here (``MesoNet5`` is
    MesoNet, F2F, transfer in both): the only rows a published table can be compared with."""
    def same(d):
        arch, trainset, strategy = study.parse_detector(d)
        return (trainset in PAPER.trainsets and strategy in PAPER.strategies
                and PAPER.detector_name(arch, trainset, strategy) == d)

    out = {}
    for name, t in tables.items():
        names = t.index if name.startswith("full") else t.detector
        out[name] = t.loc[np.array([same(d) for d in names], dtype=bool)]
    return out


def write_outputs(metrics: pd.DataFrame, reference: dict[str, pd.DataFrame], out_dir: str | Path,
                  threshold: float = 30.0, drop_points: float = 20.0, margin: float = 10.0,
                  study: Study = PAPER) -> dict:
    """Write every table, comparison, CV of AP and the findings of ``study``; return the findings dict.

    The published tables are compared with the detectors that carry the paper's names; the findings'
    published check applies the same rules to the published tables, read as the paper's study.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics.to_parquet(out_dir / "metrics.parquet", index=False)
    tables = build_tables(metrics, threshold, study)
    captions = titles(study)
    for name in ("table4", "table5", "table6", "table7"):
        caption = captions[name] + (f", degradation > {threshold:g}" if name in RQ2_TABLES else "")
        _write_table(round_table(tables[name]), out_dir, name, caption)

    findings: dict = dict(threshold=threshold, unseen_sets=_unseen_sets(accuracy_wide(metrics, study=study), study),
                          detectors=sorted(tables["table4"].detector), published_outside_ci={})
    comparable = _paper_named(tables, study)
    for name, pub in reference.items():
        cmp = compare_with_published(name, pub, comparable, metrics)
        sp = degradation_spearman(pub, comparable["table5"]) if name == "table5" else None
        if sp is not None:
            findings["table5_spearman"] = sp
        cmp.to_csv(out_dir / f"{name}_vs_published.csv", index=False)
        lv = metrics["ci_level"].iloc[0] if "ci_level" in metrics and len(metrics) else None
        summary, flagged = _vs_summary(name, cmp, sp, lv)
        findings["published_outside_ci"][name] = flagged
        (out_dir / f"{name}_vs_published.md").write_text(summary + "\n" + to_markdown(cmp) + "\n")

    cv = cv_ap(metrics, study)
    cv.to_csv(out_dir / "cv_ap.csv", index=False, float_format="%.4f")

    findings["finding1"] = finding1(tables["table5"], drop_points, study)
    findings["finding2"] = finding2(tables["table6"], tables["table7"], margin, threshold, study)
    if {"table5", "table6", "table7"} <= set(reference):
        # The same rules applied to the published tables: they should reproduce the study's own claims.
        findings["published_check"] = dict(
            finding1=finding1(reference["table5"], drop_points, PAPER)["verdict"],
            finding2=finding2(reference["table6"], reference["table7"], margin, threshold, PAPER)["verdict"])
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
    p.add_argument("--predictions", nargs="+", required=True,
                   help="prediction files .../{trainset}/{arch}/{strategy}/{dataset}.parquet; only these are read")
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
    add_argument(p)
    return p


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    paths = prediction_table(args.predictions, args.study)
    log.info("%d prediction files", len(paths))
    metrics = collect_metrics(paths, n_boot=args.n_boot, seed=args.seed, level=args.level, study=args.study)
    reference = load_reference(args.reference) if args.reference else {}
    findings = write_outputs(metrics, reference, args.out_dir, threshold=args.threshold,
                             drop_points=args.drop_points, margin=args.margin, study=args.study)
    for k in ("finding1", "finding2"):
        log.info("%s", findings[k]["sentence"])


if __name__ == "__main__":
    main()
