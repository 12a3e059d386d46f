"""What a shorter early-stopping patience would have cost a finished run: replayed on its training histories.

    .venv/bin/python bench/patience_replay.py [--workdir .] [--patience 8 5 3] [--architectures ...] [--strategies ...]

Reads every ``results/models/<trainset>/<arch>/<strategy>_history.csv`` and applies the stopping rule of
``dfstudy.train`` (stop once the last ``patience`` epochs all fell short of the best before them) to each
history as if the run had used that patience. Printed per patience: the epoch seconds it would have saved
and how many detectors would keep another epoch than the run kept (the best epoch of the whole history),
then those detectors. A history that ended early under the run's own patience can only be replayed with a
smaller one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dfstudy.train import _why_stop


def kept_epoch(history: pd.DataFrame, epochs: int) -> int:
    """The epoch (1-based) training keeps after `epochs` epochs: the first with the best validation accuracy."""
    return int(history["val_accuracy"].iloc[:epochs].to_numpy().argmax()) + 1


def stop_epoch(rows: list[dict], patience: int) -> int:
    """How many epochs of the history `rows` would have run under `patience` (``dfstudy.train``'s rule)."""
    return next((n for n in range(1, len(rows) + 1) if _why_stop(rows[:n], patience)), len(rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="the run's folder (holds results/)")
    p.add_argument("--patience", type=int, nargs="+", default=[8, 6, 5, 4, 3])
    p.add_argument("--architectures", nargs="+", help="only these architectures (default: every one trained)")
    p.add_argument("--strategies", nargs="+", help="only these strategies (default: every one trained)")
    args = p.parse_args(argv)
    rows = []
    for path in sorted((args.workdir / "results/models").glob("*/*/*_history.csv")):
        arch, strategy = path.parent.name, path.name.removesuffix("_history.csv")
        if (args.architectures and arch not in args.architectures) or (
            args.strategies and strategy not in args.strategies
        ):
            continue
        history = pd.read_csv(path)
        records = history.to_dict("records")
        detector = f"{path.parent.parent.name}/{arch}/{strategy}"
        kept_now = kept_epoch(history, len(history))  # what the run kept
        for patience in args.patience:
            stop = stop_epoch(records, patience)
            kept = kept_epoch(history, stop)
            rows.append(
                {
                    "patience": patience,
                    "detector": detector,
                    "epochs_run": len(history),
                    "stop": stop,
                    "kept": kept,
                    "kept_now": kept_now,
                    "val_accuracy": history["val_accuracy"].iloc[kept - 1],
                    "val_accuracy_now": history["val_accuracy"].iloc[kept_now - 1],
                    "saved_s": history["seconds"].iloc[stop:].sum(),
                    "epoch_s": history["seconds"].sum(),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        raise SystemExit(f"no training histories under {args.workdir / 'results/models'}")
    table["changed"] = table["kept"] != table["kept_now"]
    summary = table.groupby("patience").agg(
        saved_s=("saved_s", "sum"),
        epoch_s=("epoch_s", "sum"),
        detectors=("detector", "size"),
        changed=("changed", "sum"),
    )
    print(summary.sort_index(ascending=False).round(1).to_markdown())
    print()
    changed = table[table["changed"]].drop(columns=["changed", "epoch_s"])
    print(
        changed.round({"val_accuracy": 3, "val_accuracy_now": 3, "saved_s": 1}).to_markdown(index=False)
        if len(changed)
        else "no detector would keep another epoch"
    )


if __name__ == "__main__":
    main()
