"""Score videos or face images with a trained detector: P(fake) per video (mean over its frames) or image.

For people, not the workflow: ``dfstudy predict --model results/models/CELEB/MesoNet/original.keras
clip.mp4 folder/ [--frames 10] [--save-crops DIR]``. Videos go through the same face extraction and
alignment as the training data (``dfstudy.faces``), image files through the same alignment, at the
model's input size.
"""

import argparse
import logging
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dfstudy.metrics import is_fake
from dfstudy.models import registry

LOG = logging.getLogger("dfstudy.predict")  # not __name__: that is "__main__" under python -m
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
TABLE_COLUMNS = ["path", "kind", "faces", "score", "verdict", "note"]


def score_images(model, images, batch_size=64):
    """P(fake) for each image.

    Parameters
    ----------
    model : keras.Model
        A detector with one sigmoid output (1 = fake).
    images : ndarray
        (N, S, S, 3) RGB in 0-255, S the model's input size; uint8 is cast inside the model.
    batch_size : int

    Returns
    -------
    ndarray of float32, shape (N,)
    """
    images = np.asarray(images)
    scores = np.empty(len(images), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        # predict_on_batch: one graph call per batch, without predict()'s per-call data-adapter setup
        out = model.predict_on_batch(images[start : start + batch_size])
        scores[start : start + batch_size] = np.asarray(out, dtype=np.float32).reshape(-1)
    return scores


def find_inputs(paths):
    """Videos and images named by `paths` (files, or folders searched recursively), in a stable order."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
        elif path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            found.append(path)
        else:
            raise ValueError(
                f"{path}: not a folder, video ({sorted(VIDEO_SUFFIXES)}) or image ({sorted(IMAGE_SUFFIXES)})"
            )
    return found


def _crops(path, n_frames, size):
    """Aligned face crops of one input as (frame label, crop) pairs, and a note on what was skipped."""
    from dfstudy import faces  # dlib and its models load only when something is to be aligned

    if path.suffix.lower() in VIDEO_SUFFIXES:
        found, skipped = faces.extract_faces(path, n_frames, size)
        note = "; ".join(sorted({str(s["reason"]) for s in skipped}))
        return [(f"f{f['frame']:06d}", f["crop"]) for f in found], note
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        return [], "unreadable"
    crop, info = faces.align_face(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size)
    return ([("image", crop)], "") if crop is not None else ([], str(info))


def predict_paths(model, paths, n_frames=10, batch_size=64, save_crops=None):
    """One row per video or image: how many faces were scored, their mean P(fake), and the verdict."""
    size = int(model.input_shape[1])
    rows = []
    for path in find_inputs(paths):
        crops, note = _crops(path, n_frames, size)
        score = float(score_images(model, np.stack([c for _, c in crops]), batch_size).mean()) if crops else math.nan
        if save_crops and crops:
            Path(save_crops).mkdir(parents=True, exist_ok=True)
            stem = "_".join(part for part in path.with_suffix("").parts if part not in ("/", ".", ".."))
            for label, crop in crops:
                cv2.imwrite(str(Path(save_crops) / f"{stem}_{label}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        verdict = "" if math.isnan(score) else ("fake" if is_fake(score) else "real")
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
        rows.append(
            {"path": str(path), "kind": kind, "faces": len(crops), "score": score, "verdict": verdict, "note": note}
        )
        LOG.info("%s: %d faces, P(fake) %.3f %s", path, len(crops), score, note)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="dfstudy predict", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", help="videos, face images, or folders of them")
    p.add_argument("--model", required=True, type=Path, help="trained detector (.keras)")
    p.add_argument("--frames", type=int, default=10, help="frames per video, evenly spaced")
    p.add_argument("--save-crops", type=Path, help="write the aligned face crops here (PNG)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, help="also write the table as CSV")
    registry.add_arguments(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from dfstudy.evaluate import load_model  # imports the architectures' custom layers (and --plugins)

    model = load_model(args.model, args.plugins)
    table = predict_paths(model, args.paths, args.frames, args.batch_size, args.save_crops)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main(sys.argv[1:])
