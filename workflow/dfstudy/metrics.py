"""Detection metrics of one detector on one test set, with video-level bootstrap intervals.

The study reports one number per (detector, test set): the share of test *images* classified correctly
at threshold 0.5, in percent. This module computes that number and the usual companions (AUC, average
precision, equal error rate, video-level accuracy and AUC), and percentile bootstrap intervals.

Two decisions worth knowing:

* **Threshold rule.** An image is called fake when ``score > threshold`` (strictly), the rule of
  ``keras.metrics.BinaryAccuracy`` and of the study's own test scripts (``evaluate_generator`` with
  Keras' binary accuracy, which rounds 0.5 down), so the accuracy reported here equals the validation
  accuracy the training stage used to pick its best epoch. A score of exactly 0.5 counts as "real".
  :func:`is_fake` is that rule; every stage that turns a score into a verdict (``dfstudy predict``,
  the evaluation log, the causal analysis's correctness measure) calls it.
* **Resampling unit.** The ten frames of a video share identity, background, compression and the same
  manipulation, so they are not independent draws. :func:`bootstrap_ci` therefore resamples *videos*
  (with all their frames) by default; a frame bootstrap understates the uncertainty. Resampling is
  stratified by label by default because every test set is balanced 50/50 by design (the class mix is
  fixed, not random); every video holds one class only, so stratifying videos is well defined.

Label 1 = fake, 0 = real; ``score`` = P(fake).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

log = logging.getLogger(__name__)

__all__ = [
    "THRESHOLD",
    "is_fake",
    "frame_metrics",
    "video_metrics",
    "equal_error_rate",
    "bootstrap_ci",
    "evaluate_predictions",
]


# --------------------------------------------------------------------------------------------------
# Point metrics
# --------------------------------------------------------------------------------------------------


def _as_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64, copy=False).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 (real) or 1 (fake); found {np.unique(y[bad])[:5]}")
    return y, s


def equal_error_rate(labels, scores, sample_weight=None) -> tuple[float, float]:
    """Equal error rate from the ROC curve, linearly interpolated where FPR and FNR cross.

    Parameters
    ----------
    labels, scores : array-like
        Binary labels (1 = fake) and scores (higher = more fake). Both classes must be present.
    sample_weight : array-like, optional
        Per-sample weights (used by the bootstrap).

    Returns
    -------
    (eer, threshold) : tuple of float
        ``eer`` in [0, 1]; ``threshold`` is the ROC threshold of the first ROC point at or past the
        crossing (``inf`` when the crossing is at the curve's start).

    Notes
    -----
    Along the ROC polyline FPR rises and FNR = 1 - TPR falls, so ``d = FPR - FNR`` is non-decreasing from
    -1 to 1. We take the first vertex with ``d >= 0`` and interpolate on the segment before it, where FPR
    and FNR are both linear in the segment parameter, so the crossing value is the same on both curves.
    """
    fpr, tpr, thr = roc_curve(labels, scores, sample_weight=sample_weight, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fpr - fnr
    i = int(np.argmax(d >= 0))  # d[-1] == 1 >= 0, so a crossing always exists
    if i == 0 or d[i] == 0:
        return float(fpr[i]), float(thr[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1])), float(thr[i])

THRESHOLD = 0.5


def is_fake(score, threshold: float = THRESHOLD):
    """The verdict rule: fake when ``score > threshold`` (strictly; a score of exactly 0.5 is real).

    Works elementwise on a float, a NumPy array, a pandas Series or a backend tensor (``keras.ops``).
    """
    return score > threshold


def frame_metrics(labels, scores, threshold: float = THRESHOLD) -> dict:
    """Image-level metrics of one detector on one test set.

    Parameters
    ----------
    labels : array-like of {0, 1}
        1 = fake, 0 = real.
    scores : array-like of float
        P(fake) per image.
    threshold : float
        An image is called fake when ``score > threshold`` (Keras' ``BinaryAccuracy`` rule).

    Returns
    -------
    dict
        ``n, n_real, n_fake``; ``accuracy`` (percent, the study's measure); ``auc``, ``ap`` (average
        precision, fake = positive class), ``eer`` (fractions in [0, 1]); ``eer_threshold``; ``note``:
        empty, or why some metric is NaN or degenerate. Never raises on a single-class or constant-score
        input: AUC, AP and EER need both classes and are NaN without them (AP would be trivially 1 with
        only fakes, which says nothing about the detector). Constant scores are valid input (AUC 0.5,
        EER 0.5, AP = share of fakes) and flagged in ``note``. Non-finite scores make every metric NaN.
    """
    y, s = _as_arrays(labels, scores)
    n, n_fake = y.size, int(y.sum())
    out = dict(n=int(n), n_real=int(n - n_fake), n_fake=n_fake, accuracy=math.nan, auc=math.nan,
               ap=math.nan, eer=math.nan, eer_threshold=math.nan, note="")
    notes = []
    if n == 0:
        out["note"] = "no images: every metric undefined"
        return out
    if not np.isfinite(s).all():
        out["note"] = f"{int((~np.isfinite(s)).sum())} non-finite scores: every metric undefined"
        return out
    out["accuracy"] = 100.0 * accuracy_score(y, is_fake(s, threshold).astype(np.int64))
    if n_fake in (0, n):
        only = "fake" if n_fake else "real"
        notes.append(f"only {only} images: AUC, AP and EER undefined")
    else:
        out["auc"] = float(roc_auc_score(y, s))
        out["ap"] = float(average_precision_score(y, s))
        out["eer"], out["eer_threshold"] = equal_error_rate(y, s)
    if np.ptp(s) == 0:
        notes.append(f"constant score {s[0]:.6g}: the detector does not rank images "
                     "(AUC and EER 0.5 by construction)")
    out["note"] = "; ".join(notes)
    return out


def _video_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per video: label, mean frame score, frame count. Refuses videos with mixed labels."""
    g = df.groupby("video_id", sort=True, observed=True)
    v = g.agg(label_min=("label", "min"), label_max=("label", "max"), score=("score", "mean"),
              n_frames=("score", "size"))
    mixed = v.index[v.label_min != v.label_max]
    if len(mixed):
        raise ValueError(f"{len(mixed)} videos hold both labels, e.g. {list(mixed[:3])}")
    return v.rename(columns={"label_min": "label"}).drop(columns="label_max")


def video_metrics(df: pd.DataFrame, threshold: float = 0.5) -> dict:
    """Video-level metrics: a video's score is the mean score of its frames.

    Parameters
    ----------
    df : DataFrame
        Columns ``video_id, label, score`` (one row per image).
    threshold : float
        A video is called fake when its mean score ``> threshold``.

    Returns
    -------
    dict
        ``n_videos``, ``video_accuracy`` (percent), ``video_auc``, ``video_note`` (why something is NaN).
    """
    if len(df) == 0:
        return dict(n_videos=0, video_accuracy=math.nan, video_auc=math.nan,
                    video_note="no images: every metric undefined")
    v = _video_table(df)
    m = frame_metrics(v["label"].to_numpy(), v["score"].to_numpy(), threshold=threshold)
    return dict(n_videos=int(len(v)), video_accuracy=m["accuracy"], video_auc=m["auc"],
                video_note=m["note"])


# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------


def _resample_counts(group_label: np.ndarray, n_boot: int, rng: np.random.Generator,
                     stratify: bool) -> np.ndarray:
    """(n_boot, n_groups) multiplicities of a with-replacement resample of the groups.

    With ``stratify`` each class's groups are resampled among themselves, keeping the class counts.
    """
    n_groups = group_label.size
    counts = np.zeros((n_boot, n_groups), dtype=np.int32)
    strata = [np.flatnonzero(group_label == c) for c in np.unique(group_label)] if stratify \
        else [np.arange(n_groups)]
    rows = np.arange(n_boot)[:, None]
    for members in strata:
        draw = members[rng.integers(0, members.size, size=(n_boot, members.size))]
        np.add.at(counts, (np.broadcast_to(rows, draw.shape), draw), 1)
    return counts


def _weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney, ties count 1/2) for each row of weights ``w`` (n_boot, n), vectorised.

    Frames are sorted by score once; tied scores are pooled, so each row costs O(n).
    """
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted, w_sorted = s[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    neg = np.add.reduceat(w_sorted * (1 - y_sorted), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _weighted_ap(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's step sum, no interpolation) for each row of weights ``w``
    (n_boot, n), vectorised like :func:`_weighted_auc`; NaN where a row lacks either class."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted, w_sorted = s[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    neg = np.add.reduceat(w_sorted * (1 - y_sorted), starts, axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    total_pos, total_neg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        # a score group with no weight adds no recall, so its (undefined) precision never counts
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        ap = (pos * precision).sum(axis=1) / total_pos
    return np.where((total_pos > 0) & (total_neg > 0), ap, np.nan)


_NAMED = ("accuracy", "auc", "ap", "eer", "video_accuracy")


def bootstrap_ci(df: pd.DataFrame, metric: str | Callable, n_boot: int, seed: int,
                 by: str | None = "video_id", level: float = 0.95, threshold: float = 0.5,
                 stratify: bool = True, replicates: bool = False) -> dict:
    """Percentile bootstrap interval of a metric, resampling videos (default) or frames.

    Parameters
    ----------
    df : DataFrame
        Columns ``label, score`` and, when ``by`` is set, the grouping column (``video_id``).
    metric : str or callable
        ``"accuracy"`` (percent), ``"auc"``, ``"ap"``, ``"eer"``, ``"video_accuracy"`` (percent, mean
        frame score per video), or ``f(labels, scores) -> float``. Accuracy, AUC and AP are fully
        vectorised; the others recompute once per replicate (``eer`` through ``sample_weight``, callables
        on the explicitly resampled rows).
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of the NumPy generator (same seed, same interval).
    by : str or None
        Resampling unit. ``"video_id"``: draw videos with replacement and keep all their frames (frames
        of a video are not independent). ``None``: draw frames (the naive i.i.d. bootstrap).
    level : float
        Coverage of the percentile interval.
    threshold : float
        Decision threshold for the accuracies.
    stratify : bool
        Resample within each label (test sets are balanced by design). With ``by`` set, every group must
        hold one label only.
    replicates : bool
        Also return the replicates (``"replicates"``, length ``n_boot``, NaN where undefined). The resample
        depends only on the seed, ``n_boot`` and the sorted units, so two calls with one seed on the same
        videos draw the same videos: their replicates are paired and may be combined
        (``dfstudy.comparison`` averages them over test sets).

    Returns
    -------
    dict
        ``estimate`` (metric on the data as is), ``low``, ``high``, ``half_width`` (``(high-low)/2``),
        ``level``, ``n_boot``, ``n_valid`` (replicates where the metric was defined), ``by``, ``n_units``
        (videos or frames resampled).
    """
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    if isinstance(metric, str) and metric not in _NAMED:
        raise ValueError(f"unknown metric {metric!r}; choose from {_NAMED} or pass a callable")
    y = df["label"].to_numpy().astype(np.int64)
    s = df["score"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)

    if by is None:
        unit = np.arange(y.size)
        unit_label = y
    else:
        codes, uniques = pd.factorize(df[by], sort=True)
        unit = codes
        lab_min = np.full(len(uniques), 2, dtype=np.int64)
        lab_max = np.full(len(uniques), -1, dtype=np.int64)
        np.minimum.at(lab_min, codes, y)
        np.maximum.at(lab_max, codes, y)
        if stratify and (lab_min != lab_max).any():
            raise ValueError(f"stratified resampling by {by!r} needs one label per group")
        unit_label = lab_min
    n_units = int(unit_label.size)

    estimate = _point(metric, y, s, df, threshold)
    result = dict(estimate=estimate, low=math.nan, high=math.nan, half_width=math.nan, level=level,
                  n_boot=int(n_boot), n_valid=0, by=by or "frame", n_units=n_units)
    if replicates:
        result["replicates"] = np.full(max(int(n_boot), 0), np.nan)
    if n_units == 0 or n_boot <= 0 or not np.isfinite(s).all():
        return result

    counts = _resample_counts(unit_label, n_boot, rng, stratify)      # (n_boot, n_units)
    if metric == "accuracy":
        correct = np.bincount(unit, weights=(is_fake(s, threshold) == (y == 1)), minlength=n_units)
        frames = np.bincount(unit, minlength=n_units).astype(np.float64)
        reps = 100.0 * (counts @ correct) / (counts @ frames)
    elif metric == "video_accuracy":
        if by is None:
            raise ValueError("video_accuracy needs by='video_id'")
        vt = _video_table(df)  # sorted by video_id, the same order as factorize(sort=True)
        correct = (is_fake(vt["score"].to_numpy(), threshold) == (vt["label"].to_numpy() == 1)).astype(float)
        reps = 100.0 * (counts @ correct) / counts.sum(axis=1)
    else:
        w = counts[:, unit].astype(np.float64)                        # (n_boot, n_frames)
        if metric == "auc":
            reps = _weighted_auc(y, s, w)
        elif metric == "ap":
            reps = _weighted_ap(y, s, w)
        else:
            reps = np.full(n_boot, np.nan)
            for b in range(n_boot):
                keep = w[b] > 0
                yb, sb, wb = y[keep], s[keep], w[b, keep]
                if callable(metric):
                    idx = np.repeat(np.flatnonzero(keep), wb.astype(np.int64))
                    reps[b] = metric(y[idx], s[idx])
                elif yb.min() == yb.max():
                    continue
                else:  # eer
                    reps[b] = equal_error_rate(yb, sb, sample_weight=wb)[0]

    reps = np.asarray(reps, dtype=np.float64)
    if replicates:
        result["replicates"] = reps
    valid = reps[np.isfinite(reps)]
    result["n_valid"] = int(valid.size)
    if valid.size:
        alpha = (1.0 - level) / 2.0
        low, high = np.percentile(valid, [100 * alpha, 100 * (1 - alpha)])
        result.update(low=float(low), high=float(high), half_width=float((high - low) / 2))
    return result


def _point(metric, y, s, df, threshold) -> float:
    if callable(metric):
        return float(metric(y, s))
    if metric == "video_accuracy":
        return video_metrics(df, threshold)["video_accuracy"]
    return frame_metrics(y, s, threshold)[metric]


# --------------------------------------------------------------------------------------------------
# Everything for one prediction file
# --------------------------------------------------------------------------------------------------


def evaluate_predictions(df: pd.DataFrame, n_boot: int, seed: int, level: float = 0.95,
                         threshold: float = 0.5) -> dict:
    """All metrics of one detector on one test set, as a flat dict (one row of the long table).

    Parameters
    ----------
    df : DataFrame
        A prediction file: ``image_id, video_id, label, score``.
    n_boot, seed, level, threshold
        Bootstrap replicates, seed, interval coverage, decision threshold.

    Returns
    -------
    dict
        :func:`frame_metrics` and :func:`video_metrics` keys, plus ``accuracy_ci_low/high/half``
        (video bootstrap, the interval used to compare with the published numbers),
        ``accuracy_frame_ci_low/high`` (frame bootstrap, for contrast), ``auc_ci_low/high`` (video
        bootstrap), ``ci_level`` and ``n_boot``.
    """
    out = frame_metrics(df["label"].to_numpy(), df["score"].to_numpy(), threshold)
    out.update(video_metrics(df, threshold))
    acc = bootstrap_ci(df, "accuracy", n_boot, seed, by="video_id", level=level, threshold=threshold)
    acc_f = bootstrap_ci(df, "accuracy", n_boot, seed + 1, by=None, level=level, threshold=threshold)
    auc = bootstrap_ci(df, "auc", n_boot, seed + 2, by="video_id", level=level, threshold=threshold) \
        if np.isfinite(out["auc"]) else dict(low=math.nan, high=math.nan)
    out.update(accuracy_ci_low=acc["low"], accuracy_ci_high=acc["high"],
               accuracy_ci_half=acc["half_width"], accuracy_frame_ci_low=acc_f["low"],
               accuracy_frame_ci_high=acc_f["high"], auc_ci_low=auc["low"], auc_ci_high=auc["high"],
               ci_level=level, n_boot=int(n_boot))
    return out
