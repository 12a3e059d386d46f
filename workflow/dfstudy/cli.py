"""The ``dfstudy`` command: one subcommand per stage, each the same ``main`` the workflow's rules run
as ``python -m dfstudy.<stage>``. A stage with several commands (``faces extract|merge``) dispatches
with :func:`run_subcommands`, so ``dfstudy faces merge`` and ``python -m dfstudy.faces merge`` agree."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

COMMANDS = {
    "synth": ("dfstudy.synth", "render the synthetic face-video corpus"),
    "index": ("dfstudy.datasets", "index the videos of a dataset root"),
    "faces": ("dfstudy.faces", "extract | merge: align the faces of one shard of videos, or merge the shards"),
    "splits": ("dfstudy.splits", "make | pack | audit: the train/val/test splits"),
    "train": ("dfstudy.train", "train one detector"),
    "predict": ("dfstudy.predict", "score videos, folders of videos, or images with a trained detector"),
    "evaluate": ("dfstudy.evaluate", "predict test splits with a detector"),
    "analyse": ("dfstudy.analyse", "one detector's predictions, Grad-CAM and neuron ranking in one process"),
    "tables": ("dfstudy.tables", "Tables IV-VII, published vs. reproduced, findings 1-2"),
    "comparison": ("dfstudy.comparison", "beyond the study: every detector family ranked, with a sentence"),
    "loo": ("dfstudy.loo", "make | audit | table: beyond the study, leave-one-out over the FF++ methods"),
    "gradcam": ("dfstudy.gradcam", "Grad-CAM heatmaps of a detector (study_code, heatmap, guided)"),
    "faithfulness": ("dfstudy.faithfulness", "Grad-CAM deletion test: table, figure, sentence"),
    "similarity": ("dfstudy.similarity", "compare | summarize: SSIM of congenetic heatmaps, finding 3"),
    "figures_rq3": ("dfstudy.figures_rq3", "fig2 | fig3: example heatmaps, SSIM histograms"),
    "causal": ("dfstudy.causal", "rank | summarize: causal (ACE) neuron ranking, top-k overlaps, finding 4"),
    "figures_rq4": ("dfstudy.figures_rq4", "Figure 5: top-k overlap of neuron rankings"),
    "report": ("dfstudy.report", "the study report (HTML + Markdown)"),
}


def run_subcommands(prog: str, description: str, commands: dict[str, tuple[str, Callable]],
                    argv: Sequence[str] | None = None):
    """Run the subcommand named by ``argv[0]`` with the rest of ``argv``.

    Parameters
    ----------
    prog, description : str
        Shown by ``--help``, which lists the subcommands with their help.
    commands : dict
        ``{name: (help, main)}``; ``main(rest)`` parses its own options (``<prog> <name> --help``).
    argv : sequence of str, optional
        Default: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=32))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, _) in commands.items():
        sub.add_parser(name, help=text, add_help=False)  # its --help reaches the command's own parser
    args, rest = parser.parse_known_args(argv)
    return commands[args.command][1](rest)


def split_out_pairs(splits, outs):
    """The --split/--out pairs of a stage that loads a model once for several test sets."""
    if len(splits) != len(outs):
        raise SystemExit(f"--split given {len(splits)} times but --out {len(outs)} times")
    return list(zip(splits, outs))


def _runner(module: str) -> Callable:
    return lambda rest: importlib.import_module(module).main(rest)  # import only the stage that runs


def main(argv: Sequence[str] | None = None) -> None:
    commands = {name: (text, _runner(module)) for name, (module, text) in COMMANDS.items()}
    run_subcommands("dfstudy", "How well do deepfake detectors generalise? One command per workflow stage; "
                    "'dfstudy COMMAND --help' for its options.", commands, argv)
