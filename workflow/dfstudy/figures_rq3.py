"""RQ3 figures: example heatmaps (Figure 2) and SSIM histograms of congenetic groups (Figure 3).

Figure 3 has one panel per congenetic group (architecture x training set; the ten of the study, or whatever
subset the table holds). Each panel is a grouped bar chart over the group's original test set and the unseen
sets (the paper: FS, NT, DF, DFD; ``--study`` names a run's own, in its order): per test set, the share of
images whose group SSIM is < 0.7, 0.7-0.9 and >= 0.9. Colours are Okabe-Ito (colour-blind safe):
vermillion = dissimilar, light blue = low similarity, dark blue = similar.

Figure 2 is a grid: the first row shows one face per test set, each further row a detector's Grad-CAM map
of that same face in JET colours (red = high, blue = low), for one variant (``dfstudy.gradcam``): for
``study_code`` the image the study's code wrote (P(real) blended onto the face), otherwise a pure map of
P(fake).

Both are drawn at print size (7.2 in wide, the text width of a two-column paper) with 7-8 pt fonts.

Command lines::

    python -m dfstudy.figures_rq3 fig3 --table results/tables/rq3_ssim_heatmap.csv --study "$STUDY_JSON" \
        --png results/figures/fig3_ssim_heatmap.png --pdf results/figures/fig3_ssim_heatmap.pdf
    python -m dfstudy.figures_rq3 fig2 \
        --heatmaps results/gradcam/CELEB/MesoNet/{original,transfer,merge}/heatmap/{CELEB,FS,NT,DF,DFD}.npz \
        --splits results/splits/{CELEB,FS,NT,DF,DFD}/test.npz --seed 1234 \
        --png results/figures/fig2_heatmaps_CELEB_heatmap.png

``fig2`` reads each heatmap file's ``detector`` and ``dataset`` fields and takes a split's dataset from its
folder name (``results/splits/{dataset}/test.npz``).
"""

from __future__ import annotations

import argparse
import logging
import string
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dfstudy.gradcam import colorize  # noqa: E402
from dfstudy.similarity import BIN_LABELS, BINS, dataset_order, load_heatmaps  # noqa: E402
from dfstudy.study import PAPER, Study, add_argument  # noqa: E402

log = logging.getLogger(__name__)

BIN_COLOURS = {"lt07": "#D55E00", "07_09": "#56B4E9", "ge09": "#0072B2"}  # Okabe-Ito
PAGE_WIDTH = 7.2  # inches


def _style():
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", rc={
        "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5,
        "ytick.labelsize": 6.5, "legend.fontsize": 7,
    })


def _in_order(present, order):
    """The values of ``order`` that are present, then any others by name."""
    return [v for v in order if v in present] + sorted(set(present) - set(order))


def figure3(table: pd.DataFrame, study: Study = PAPER):
    """Grouped bar charts of the SSIM bin shares, one panel per congenetic group.

    Parameters
    ----------
    table : DataFrame
        ``dfstudy.similarity.summarize`` output (trainset, arch, dataset, n, share_lt07, share_07_09,
        share_ge09, ...).
    study : Study
        Order of the rows (training sets), columns (architectures) and bars (the group's own test set, then
        the unseen sets).

    Returns
    -------
    matplotlib.figure.Figure
        Rows = training sets, columns = architectures (study order), only the groups present.
    """
    if table.empty:
        raise ValueError("the SSIM table is empty")
    trainsets = _in_order(set(table.trainset), study.trainsets)
    archs = _in_order(set(table.arch), study.architectures)
    axes_style, context = _style()
    with axes_style, context:
        fig, axes = plt.subplots(
            len(trainsets), len(archs), figsize=(min(PAGE_WIDTH, 0.5 + 1.45 * len(archs)), 0.4 + 1.75 * len(trainsets)),
            sharey=True, squeeze=False,
        )
        letters = iter(string.ascii_lowercase)
        width = 0.27
        for r, trainset in enumerate(trainsets):
            for c, arch in enumerate(archs):
                ax = axes[r, c]
                cell = table[(table.trainset == trainset) & (table.arch == arch)]
                if cell.empty:
                    ax.set_axis_off()
                    continue
                order = [dataset_order(d, trainset, study) for d in cell.dataset]
                cell = cell.iloc[sorted(range(len(cell)), key=order.__getitem__)]
                x = np.arange(len(cell))
                for k, b in enumerate(BINS):
                    ax.bar(x + (k - 1) * width, 100 * cell[f"share_{b}"], width, color=BIN_COLOURS[b],
                           label=BIN_LABELS[b], linewidth=0)
                ax.set_xticks(x, cell.dataset, fontsize="small")
                for tick, dataset in zip(ax.get_xticklabels(), cell.dataset):
                    if dataset == trainset:  # the group's own test set
                        tick.set_fontweight("bold")
                ax.set_xlim(-0.6, len(cell) - 0.4)
                ax.set_ylim(0, 100)
                ax.set_yticks([0, 25, 50, 75, 100])
                # two short lines: one line per panel overran its neighbours at five architectures or more
                ax.set_title(f"({next(letters)}) {arch}\n{trainset}", pad=3, fontsize="medium")
                ax.grid(axis="x", visible=False)
                ax.tick_params(axis="both", length=0, pad=2)
                if c == 0:
                    ax.set_ylabel("images (%)")
        handles, labels = next(ax for ax in axes.flat if ax.axison).get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()), w_pad=0.6, h_pad=0.8)
    return fig


def figure2(faces: dict, maps: dict, detectors: list, datasets: list, labels: dict | None = None,
            study: Study = PAPER):
    """Example heatmaps: first row the faces, then one row per detector; one column per test set.

    Parameters
    ----------
    faces : dict
        Dataset -> face image (H, W, 3) uint8 RGB.
    maps : dict
        (detector, dataset) -> heatmap (H, W) in [0, 1] (or uint8 grey levels); missing cells stay blank.
    detectors, datasets : list
        Row and column order.
    labels : dict, optional
        Detector -> row label (default: the study name, ``CELEB/MesoNet/transfer`` -> ``MesoNet2``).
    study : Study
        Names the detectors for the default labels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = labels or {d: study.name_of_path(d) for d in detectors}
    n_rows, n_cols = 1 + len(detectors), len(datasets)
    cell = min(1.3, (PAGE_WIDTH - 0.9) / n_cols)
    axes_style, context = _style()
    with axes_style, context:
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.9 + cell * n_cols, 0.3 + cell * n_rows), squeeze=False)
        for c, dataset in enumerate(datasets):
            for r in range(n_rows):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                image = faces.get(dataset) if r == 0 else maps.get((detectors[r - 1], dataset))
                if image is None:
                    ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                else:
                    ax.imshow(image if r == 0 else colorize(image), interpolation="nearest")
                if r == 0:
                    ax.set_title(dataset, pad=3)
                if c == 0:
                    ax.set_ylabel("face" if r == 0 else labels[detectors[r - 1]])
        fig.subplots_adjust(left=0.6 / fig.get_figwidth(), right=1 - 0.55 / fig.get_figwidth(),
                            bottom=0.05, top=1 - 0.25 / fig.get_figheight(), wspace=0.04, hspace=0.04)
        cax = fig.add_axes([1 - 0.45 / fig.get_figwidth(), 0.15, 0.12 / fig.get_figwidth(), 0.6])
        bar = fig.colorbar(plt.cm.ScalarMappable(cmap="jet"), cax=cax, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"])
        bar.ax.tick_params(length=0, pad=2)
    return fig


def _save(fig, png, pdf):
    for path in (png, pdf):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=300, bbox_inches="tight")
    plt.close(fig)


def _fig3_main(args):
    _save(figure3(pd.read_csv(args.table), args.study), args.png, args.pdf)


def _fig2_main(args):
    loaded = [load_heatmaps(p) for p in args.heatmaps]
    detectors = list(dict.fromkeys(d["detector"] for d in loaded))
    trainset = detectors[0].split("/")[0]
    present = {d["dataset"] for d in loaded}
    datasets = args.datasets or sorted(present, key=lambda d: dataset_order(d, trainset, args.study))
    rng = np.random.default_rng(args.seed)
    faces, maps = {}, {}
    splits = {Path(p).parent.name: p for p in args.splits}
    for dataset in datasets:
        files = [d for d in loaded if d["dataset"] == dataset]
        if not files:
            continue
        common = sorted(set.intersection(*(set(d["image_ids"]) for d in files)))
        if not common:
            log.warning("%s: the detectors' heatmaps share no image", dataset)
            continue
        image_id = common[rng.integers(len(common))]  # the same face for every detector of the column
        for d in files:
            maps[(d["detector"], dataset)] = d["maps"][list(d["image_ids"]).index(image_id)]
        if dataset in splits:
            with np.load(splits[dataset], allow_pickle=False) as z:
                ids = z["image_ids"].astype(str)
                faces[dataset] = z["images"][int(np.flatnonzero(ids == image_id)[0])]
        log.info("%s: image %s", dataset, image_id)
    _save(figure2(faces, maps, detectors, list(datasets), study=args.study), args.png, args.pdf)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m dfstudy.figures_rq3", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="figure", required=True)
    f3 = sub.add_parser("fig3", help="SSIM histograms of congenetic groups")
    f3.add_argument("--table", required=True, help="results/tables/rq3_ssim_{variant}.csv")
    f2 = sub.add_parser("fig2", help="example heatmaps")
    f2.add_argument("--heatmaps", nargs="+", required=True, help="dfstudy.gradcam .npz files (rows x columns)")
    f2.add_argument("--splits", nargs="+", default=[], help="split .npz files holding the faces")
    f2.add_argument("--datasets", nargs="+", default=None,
                    help="column order (default: the original test set, then the study's unseen sets)")
    f2.add_argument("--seed", type=int, default=1234, help="seed of the face chosen per column")
    for sp in (f2, f3):
        sp.add_argument("--png", required=True)
        sp.add_argument("--pdf", default=None)
        add_argument(sp)
    return p.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    {"fig2": _fig2_main, "fig3": _fig3_main}[args.figure](args)


if __name__ == "__main__":
    main()
