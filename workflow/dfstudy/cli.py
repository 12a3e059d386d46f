"""The ``dfstudy`` command: one subcommand per stage, each the same ``main`` the workflow's rules run
as ``python -m dfstudy.<stage>``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": ("dfstudy.synth", "render the synthetic face-video corpus"),
    "index": ("dfstudy.datasets", "index the videos of a dataset root"),
    "faces": ("dfstudy.faces", "extract frames and align faces (one shard), or merge shards"),
    "splits": ("dfstudy.splits", "make, pack or audit the train/val/test splits"),
    "train": ("dfstudy.train", "train one detector"),
    "predict": ("dfstudy.predict", "score videos, folders of videos, or images with a trained detector"),
    "evaluate": ("dfstudy.evaluate", "predict test splits with a detector"),
    "tables": ("dfstudy.tables", "Tables IV-VII, published vs. reproduced, findings 1-2"),
    "gradcam": ("dfstudy.gradcam", "Grad-CAM heatmaps of a detector (study_code, heatmap, guided)"),
    "faithfulness": ("dfstudy.faithfulness", "Grad-CAM deletion test: table, figure, sentence"),
    "similarity": ("dfstudy.similarity", "SSIM of congenetic heatmaps, finding 3"),
    "causal": ("dfstudy.causal", "causal (ACE) neuron ranking, finding 4"),
    "report": ("dfstudy.report", "the study report (HTML + Markdown)"),
}


def split_out_pairs(splits, outs):
    """The --split/--out pairs of a stage that loads a model once for several test sets."""
    if len(splits) != len(outs):
        raise SystemExit(f"--split given {len(splits)} times but --out {len(outs)} times")
    return list(zip(splits, outs))


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
        print("usage: dfstudy COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines))
        sys.exit(0 if not argv or argv[0] in ("-h", "--help") else 2)
    module, _ = COMMANDS[argv[0]]
    importlib.import_module(module).main(argv[1:])
