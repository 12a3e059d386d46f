"""Figure 5 (RQ4): for each detector and each k, how many of the five datasets each top-k neuron is top-k on.

One histogram per (detector, k), as in the study: x = number of datasets (1..5), y = number of neurons.
The study's 18 panels of MesoNet, MesoInception and ShallowNet become 18 x 4 panels here (every k for
every detector), so the figure is drawn one architecture at a time (``--arch``): six detector rows by
four k columns, y shared within a column so detectors can be compared at equal k. The "all datasets"
bar - the one Finding 4 is about - is the only coloured one (seaborn's colour-blind palette), the
others are grey, so the figure reads the same in greyscale.

    python -m dfstudy.figures_rq4 --table results/tables/rq4_overlap.csv --arch MesoNet --study "$STUDY_JSON" \\
        --out results/figures/fig5_MesoNet.png      # also writes fig5_MesoNet.pdf
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dfstudy.study import PAPER, Study, add_argument  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["figure5", "main"]

ALL_COLOUR = sns.color_palette("colorblind")[2]  # the study's "green columns"
OTHER_COLOUR = "0.72"


def _fraction_label(f):
    inv = 1 / f
    return f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{f:g}"


def _detector_order(table, study):
    """Detectors in the study's order: architecture, then 1..6 (CELEB original/transfer/merge, F2F ...)."""
    keys = table.drop_duplicates("detector").copy()

    def rank(col, order):
        return study.rank(keys[col], order) if col in keys else [0] * len(keys)

    keys["_a"], keys["_t"], keys["_s"] = (rank("arch", study.architectures), rank("trainset", study.trainsets),
                                          rank("strategy", study.strategies))
    return keys.sort_values(["_a", "_t", "_s", "detector"])


def figure5(table, arch=None, study: Study = PAPER):
    """Draw Figure 5 from a collected overlap table.

    Parameters
    ----------
    table : DataFrame
        ``results/tables/rq4_overlap.csv``: ``detector, fraction, k, count, n_neurons, n_datasets`` and,
        when known, ``arch, trainset, strategy``.
    arch : str, optional
        Draw only this architecture's detectors (recommended: six rows instead of eighteen).
    study : Study
        Order of the rows (architectures, training sets, strategies).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if arch is not None:
        if "arch" not in table:
            raise ValueError("the table has no 'arch' column; cannot select an architecture")
        table = table[table["arch"] == arch]
    if table.empty:
        raise ValueError(f"no rows to draw{f' for {arch}' if arch else ''}")
    dets = _detector_order(table, study)
    fractions = sorted(table["fraction"].unique())
    n_ds = int(table["n_datasets"].max())
    counts = np.arange(1, n_ds + 1)

    sns.set_theme(context="paper", style="ticks", font_scale=0.9)
    n_rows, n_cols = len(dets), len(fractions)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.7 * n_cols + 1.0, 1.15 * n_rows + 0.9),
                             sharex=True, sharey="col", squeeze=False, layout="constrained")
    colours = [ALL_COLOUR if c == n_ds else OTHER_COLOUR for c in counts]
    for r, (_, det) in enumerate(dets.iterrows()):
        rows = table[table["detector"] == det["detector"]]
        for c, f in enumerate(fractions):
            ax = axes[r, c]
            hist = rows[np.isclose(rows["fraction"], f)].set_index("count")["n_neurons"]
            heights = np.array([hist.get(k, 0) for k in counts])
            bars = ax.bar(counts, heights, color=colours, width=0.75, edgecolor="0.25", linewidth=0.4)
            ax.bar_label(bars, labels=[str(v) for v in heights], padding=1, fontsize=6)
            ax.set_xticks(counts)
            ax.tick_params(labelsize=7, length=2)
            ax.margins(y=0.22)
            if r == 0:
                k = int(rows[np.isclose(rows["fraction"], f)]["k"].iloc[0]) if len(hist) else 0
                ax.set_title(f"top {_fraction_label(f)} (k = {k})", fontsize=8)
            if c == 0:
                sub = ", ".join(str(det[col]) for col in ("trainset", "strategy") if col in det and pd.notna(det[col]))
                ax.set_ylabel(f"{det['detector']}\n{sub}" if sub else str(det["detector"]), fontsize=8)
    for ax in axes.flat:
        ax.set_ylim(bottom=0)
    sns.despine(fig)
    fig.supxlabel(f"number of datasets (of {n_ds}) on which a neuron is among the top k", fontsize=8)
    fig.supylabel("number of neurons", fontsize=8)
    title = "Figure 5" + (f": {arch}" if arch else "") + " - overlap of top-k contributing neurons across datasets"
    fig.suptitle(title, fontsize=9)
    return fig


def _parser():
    p = argparse.ArgumentParser(prog="python -m dfstudy.figures_rq4", description=__doc__.splitlines()[0])
    p.add_argument("--table", required=True, help="collected overlap table (results/tables/rq4_overlap.csv)")
    p.add_argument("--out", required=True, help="PNG path; a PDF with the same stem is written beside it")
    p.add_argument("--arch", help="one architecture (default: every detector in the table, one row each)")
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--log-level", default="INFO")
    add_argument(p)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fig = figure5(pd.read_csv(args.table), arch=args.arch, study=args.study)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    fig.savefig(out.with_suffix(".pdf"))
    plt.close(fig)
    log.info("-> %s, %s", out, out.with_suffix(".pdf"))


if __name__ == "__main__":
    main()
