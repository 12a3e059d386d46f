"""Do the Grad-CAM maps explain the decision? The deletion test's table, figure and sentence (beyond the study).

``dfstudy.gradcam.deletion_test`` records, per image, P(fake) before occlusion (``p_base``), after
occluding the top pixels of a map (``p_top``) and after occluding the same mask at a random place
(``p_random``). Here each (detector, test set, variant) cell becomes one row: the mean drops
``drop_top = p_base - p_top`` and ``drop_random = p_base - p_random``, their difference ``gain`` and the
share of images whose map beats its shifted copy. A map that explains the decision has ``gain > 0``; a map
that explains nothing has ``gain`` near 0. The maps of ``study_code`` explain P(real) blended with the
face, so their top pixels need not lower P(fake) at all.

Command line::

    python -m dfstudy.faithfulness --inputs results/gradcam/*/*/*/faithfulness.csv \
        --table results/tables/rq3_faithfulness.csv --findings results/tables/faithfulness.json \
        --png results/figures/fig_faithfulness.png --pdf results/figures/fig_faithfulness.pdf
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

log = logging.getLogger(__name__)

COLUMNS = ["variant", "detector", "dataset", "n", "fraction", "p_base", "drop_top", "drop_random", "gain",
           "share_top_beats_random"]


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, detector, dataset): mean P(fake) and mean drops (see the module docstring)."""
    d = per_image.assign(drop_top=per_image["p_base"] - per_image["p_top"],
                         drop_random=per_image["p_base"] - per_image["p_random"])
    d["beats"] = d["drop_top"] > d["drop_random"]
    table = (d.groupby(["variant", "detector", "dataset"], sort=False)
             .agg(n=("p_base", "size"), fraction=("fraction", "first"), p_base=("p_base", "mean"),
                  drop_top=("drop_top", "mean"), drop_random=("drop_random", "mean"),
                  share_top_beats_random=("beats", "mean"))
             .reset_index())
    table["gain"] = table["drop_top"] - table["drop_random"]
    return table[COLUMNS]


def verdict(table: pd.DataFrame) -> dict:
    """Pooled drops per variant and the one sentence the report shows."""
    per_variant, parts = {}, []
    for variant, t in table.groupby("variant", sort=False):
        w = t["n"] / t["n"].sum()
        entry = dict(cells=int(len(t)), images=int(t["n"].sum()), fraction=float(t["fraction"].iloc[0]),
                     drop_top=float((w * t["drop_top"]).sum()), drop_random=float((w * t["drop_random"]).sum()),
                     cells_gain_positive=int((t["gain"] > 0).sum()))
        per_variant[variant] = entry
        parts.append(f"{variant} maps {100 * entry['drop_top']:+.1f} vs. {100 * entry['drop_random']:+.1f} "
                     f"points at random (the map ahead in {entry['cells_gain_positive']} of {entry['cells']} "
                     "detector-test set cells)")
    if not per_variant:
        return dict(sentence="Grad-CAM faithfulness was not measured.", variants={})
    fraction = next(iter(per_variant.values()))["fraction"]
    sentence = (f"Grad-CAM faithfulness (beyond the study): occluding the top {100 * fraction:g} % of each map "
                "lowers P(fake) on average by: " + "; ".join(parts) + " (a map that explains the decision "
                "lowers P(fake) more than the same area at a random place).")
    return dict(sentence=sentence, variants=per_variant)


def figure(table: pd.DataFrame):
    """One panel per variant: each cell's mean drop with the map's top pixels against the random mask's."""
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(2.4 * len(variants) + 0.4, 2.6), squeeze=False)
    lo = 100 * min(table["drop_top"].min(), table["drop_random"].min(), 0)
    hi = 100 * max(table["drop_top"].max(), table["drop_random"].max(), 0.01)
    pad = 0.05 * (hi - lo)
    for ax, variant in zip(axes[0], variants):
        t = table[table["variant"] == variant]
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999999", lw=0.8, zorder=0)
        ax.scatter(100 * t["drop_random"], 100 * t["drop_top"], s=10, color="#0072B2", alpha=0.8, linewidths=0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(variant, fontsize=8)
        ax.set_xlabel("drop, random area (points)", fontsize=7)
        ax.tick_params(labelsize=6.5)
    axes[0, 0].set_ylabel("drop, top of the map (points)", fontsize=7)
    fig.tight_layout()
    return fig


def main(argv=None):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m dfstudy.faithfulness", description=__doc__.split("\n")[0])
    p.add_argument("--inputs", nargs="+", required=True, help="faithfulness CSVs written by dfstudy.gradcam")
    p.add_argument("--table", required=True)
    p.add_argument("--findings", required=True, help="JSON with the report's sentence")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", default=None)
    args = p.parse_args(argv)
    table = summarize(pd.concat([pd.read_csv(f, dtype={"image_id": str}) for f in args.inputs], ignore_index=True))
    result = verdict(table)
    for path in (args.table, args.findings, args.png, args.pdf):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.table, index=False, float_format="%.4f")
    Path(args.findings).write_text(json.dumps(result, indent=2) + "\n")
    fig = figure(table)
    for path in (args.png, args.pdf):
        if path:
            fig.savefig(path, dpi=300, bbox_inches="tight")
    plt.close(fig)
    log.info("%s", result["sentence"])


if __name__ == "__main__":
    main()
