"""Score test sets with a trained detector: one row per image with P(fake).

The workflow calls this once per detector with all of its test sets (several ``--split``/``--out``
pairs), so the model is loaded once per job, not once per (detector, test set).

Images go to the model as they are stored, uint8 RGB in 0-255, exactly as ``dfstudy.train`` feeds them:
every architecture in ``dfstudy.models`` owns its input scaling (a rescaling layer inside the saved
model), so a saved ``.keras`` file is self-contained and evaluation cannot disagree with training about
normalisation.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy import device
from dfstudy.cli import split_out_pairs
from dfstudy.metrics import is_fake
from dfstudy.models import registry

log = logging.getLogger(__name__)

__all__ = ["predict_split", "load_split", "parse_args", "run", "main"]

SPLIT_KEYS = ("images", "labels", "image_ids", "video_ids")


def load_split(path: str | os.PathLike) -> dict:
    """Load a split ``.npz`` (``images, labels, image_ids, video_ids``) into a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in SPLIT_KEYS if k not in z.files]
        if missing:
            raise KeyError(f"{path}: missing arrays {missing}")
        return {k: z[k] for k in z.files}


def _scores_from_output(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out)
    if out.ndim == 2 and out.shape[1] == 2:  # softmax over (real, fake)
        return out[:, 1]
    if out.ndim > 1 and int(np.prod(out.shape[1:])) == 1:
        return out.reshape(-1)
    if out.ndim == 1:
        return out
    raise ValueError(f"expected one sigmoid output per image, got output shape {out.shape}")


def predict_split(model, split: dict, batch_size: int = 256) -> pd.DataFrame:
    """Score every image of a split with a detector.

    Parameters
    ----------
    model : keras.Model
        A loaded detector with one sigmoid output (P(fake)); a two-way softmax output is accepted and
        its second column (fake) used.
    split : dict
        ``images`` uint8 (N, S, S, 3) RGB, ``labels`` (N,), ``image_ids`` (N,), ``video_ids`` (N,).
    batch_size : int
        Images per forward pass (the model casts each uint8 batch itself, so no float copy of the whole
        split is ever made).

    Returns
    -------
    DataFrame
        ``image_id`` (str), ``video_id`` (str), ``label`` (uint8, 1 = fake), ``score`` (float32, P(fake)),
        in the split's order.
    """
    images = split["images"]
    n = len(images)
    for k in ("labels", "image_ids", "video_ids"):
        if len(split[k]) != n:
            raise ValueError(f"split arrays differ in length: images {n}, {k} {len(split[k])}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    scores = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        batch = np.asarray(images[start:start + batch_size])
        # predict_on_batch: one graph call per batch, without predict()'s per-call data-adapter setup.
        scores[start:start + len(batch)] = _scores_from_output(model.predict_on_batch(batch))
    if n and not np.isfinite(scores).all():
        log.warning("%d non-finite scores", int((~np.isfinite(scores)).sum()))
    return pd.DataFrame({
        "image_id": np.asarray(split["image_ids"]).astype(str),
        "video_id": np.asarray(split["video_ids"]).astype(str),
        "label": np.asarray(split["labels"]).astype(np.uint8),
        "score": scores,
    })


def load_model(path: str | os.PathLike, plugins=()):
    """Load a saved detector without its optimizer/loss (inference only).

    ``plugins`` are modules that register more architectures (``--plugins``); every registered
    architecture's builder module is imported first, so the custom layers it defines deserialize.
    """
    import keras

    registry.load_plugins(plugins)
    registry.import_builders()
    return keras.saving.load_model(path, compile=False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dfstudy.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="detector .keras file")
    p.add_argument("--split", action="append", required=True,
                   help="test split .npz; repeat, paired in order with --out")
    p.add_argument("--out", action="append", required=True,
                   help="prediction .parquet; repeat, one per --split")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None,
                   help="cap TensorFlow intra/inter-op threads (ignored on other backends)")
    p.add_argument("--log-level", default="INFO")
    device.add_arguments(p)
    registry.add_arguments(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def run(args: argparse.Namespace, model) -> None:
    """Score every ``--split`` with the loaded `model` into its ``--out`` (``main``'s work; ``dfstudy.analyse``
    calls it with the model it loaded for all of a detector's analyses)."""
    for split_path, out_path in split_out_pairs(args.split, args.out):
        split = load_split(split_path)
        pred = predict_split(model, split, batch_size=args.batch_size)
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        pred.to_parquet(out_path, index=False)
        acc = 100.0 * float((is_fake(pred["score"]) == (pred["label"] == 1)).mean()) if len(pred) else float("nan")
        log.info("%s: %d images, accuracy %.2f %% -> %s", split_path, len(pred), acc, out_path)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    split_out_pairs(args.split, args.out)  # a mismatch fails before the model loads
    if args.threads:
        # the project's one place that touches tf: caps TF thread pools, a no-op on other backends
        from dfstudy.train import configure_backend

        configure_backend(threads=args.threads, deterministic=False)
    device.announce(args.require_gpu, log)
    model = load_model(args.model, args.plugins)
    log.info("loaded %s", args.model)
    run(args, model)


if __name__ == "__main__":
    main()
