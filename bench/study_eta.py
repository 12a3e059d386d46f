"""Projected wall time of the paper-scale study on the machine this runs on, one row per stage.

Measures, with short timed runs on this machine: face detection + alignment per frame and video decoding
per frame (a 1280x720 frame with one face, detected on a 480-wide copy), PNG decoding of 256 px crops,
and per architecture the training and inference rate at 256 px (batch 32 from scratch, 64 fine-tuning,
as config/paper.yaml), Grad-CAM maps per image and causal effects (ACE) per image. It then multiplies
by the work config/paper.yaml asks for at the real datasets' counts (videos per source and the frames
each yields, images per split, epochs, detectors, test sets), and prints

- ``one device``: every job one after another on this machine (its cores for preprocessing);
- ``cluster critical path``: the DAG's longest chain when every job gets one such device, as the SLURM
  profile gives (preprocessing shards in parallel; a detector's original before its transfer and merge).

Assumptions are named in the output: mean frames per real video (decoding walks every frame), the frame
size of the real videos, and that every epoch runs (the study has no early stopping).

    .venv/bin/python bench/study_eta.py [--seconds 4] [--archs MesoNet ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import yaml
from snakemake.utils import update_config, validate

from dfstudy import causal, faces, models
from dfstudy import train as T

ROOT = Path(__file__).resolve().parents[1]
# The real downloads' video counts (README "Paper scale"); frames per video are assumptions: FaceForensics++
# and DFD clips run ~20 s at 25-30 fps, Celeb-DF's ~13 s at 30 fps.
VIDEOS = {"ffpp": {"train": 430 * 10, "test": 70 * 10}, "dfd": {"test": 363 + 3068},
          "celebdf_v2": {"train": 890 + 5639 - 518, "test": 518}, "celebdf_v1": {"test": 408 + 795}}
FRAMES_PER_VIDEO = {"ffpp": 500, "dfd": 600, "celebdf_v2": 400, "celebdf_v1": 400}


def paper_config():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
    validate(config, schema=str(ROOT / "config/schema.yaml"))
    return config


def _timed(fn, seconds, warmup=1):
    """Calls of ``fn`` per second over about ``seconds`` (after ``warmup`` calls); fn returns its item count."""
    for _ in range(warmup):
        fn()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        done += fn()
    return done / (time.perf_counter() - start)


def preprocessing_rates(seconds):
    """(faces/s, decoded frames/s) on one core for a 1280x720 video frame."""
    spec = importlib.util.spec_from_file_location("_drawing", ROOT / "tests" / "test_faces.py")
    d = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(d)
    frame = d.draw_face(d.textured_background(720, 1280, seed=1), 700, 340, 260, angle=4)
    detect = _timed(lambda: faces.align_face(frame, 256, detect_width=480)[0] is not None, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        path = d.write_video(Path(tmp) / "v.mp4", [frame] * 60, fps=25)
        decode = _timed(lambda: faces._count_frames(path), seconds)
    return detect, decode


def png_rate(seconds):
    import cv2

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.png")
        cv2.imwrite(path, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
        return _timed(lambda: cv2.imread(path) is not None, seconds)


def model_rates(arch, seconds, size=256):
    """Images/s: training at batch 32 and 64, inference, Grad-CAM (heatmap variant), ACE (if analysed)."""
    rng = np.random.default_rng(0)
    model = models.build(arch, (size, size, 3))
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")
    rates = {}
    for batch in (32, 64):
        x = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        y = rng.integers(0, 2, (batch, 1)).astype("float32")
        rates[f"train_{batch}"] = _timed(lambda: (model.train_on_batch(x, y), batch)[1], seconds)
    x = rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    rates["infer"] = _timed(lambda: (model.predict_on_batch(x), 64)[1], seconds)
    if keras.config.backend() == "tensorflow":
        from dfstudy import gradcam

        few = x[:16]
        rates["gradcam"] = _timed(lambda: (gradcam.heatmaps(model, few, variant="heatmap"), 16)[1], seconds)
    try:
        layer = models.causal_layer(arch)
    except (KeyError, ValueError):
        layer = None
    if layer:  # ACE's cost per image falls with the batch (one pass per neuron and value): 128 images
        many = rng.integers(0, 256, (128, size, size, 3), dtype=np.uint8)
        rates["ace"] = _timed(lambda: (causal.ace(model, many, layer, grid_size=4), 128)[1], seconds)
    return rates


def project(config, pre, png, rates):
    """Rows (stage, work, one device h, cluster critical path h)."""
    pf, st, det = config["preprocess"], config["splits"], config["detectors"]
    trainsets, strategies = det["trainsets"], det["strategies"]
    rows = []
    # preprocessing: every frame decoded, the target frames detected; one process per core here,
    # 64 shards per source on a cluster (each a job of its own)
    faces_total = sum(n * (pf["frames_per_training_video"] or pf["frames_per_video"] if side == "train"
                           else pf["frames_per_video"]) for s in VIDEOS for side, n in VIDEOS[s].items())
    frames_total = sum(sum(v.values()) * FRAMES_PER_VIDEO[s] for s, v in VIDEOS.items())
    core_s = faces_total / pre[0] + frames_total / pre[1]
    rows.append(("faces (detect + align, decode)", f"{faces_total:,} faces, {frames_total:,} frames decoded",
                 core_s / os.cpu_count(), core_s / (pf["shards"] * len(VIDEOS) * 4)))
    per_trainset = st["train"] + st["val"] + st["test"] + 2 * (st["finetune_own"] + 2 * st["finetune_per_unseen"])
    packed = len(trainsets) * per_trainset + 7 * st["test"]
    rows.append(("pack splits (PNG decode)", f"{packed:,} images", packed / png, (st["train"] / png)))
    epochs, n_sets = det["epochs"], {"CELEB": 6, "F2F": 7}
    cluster_train = cluster_eval = 0.0
    train_total = eval_total = gc_total = ace_total = 0.0
    for arch, r in rates.items():
        original = st["train"] * epochs["original"] / r["train_32"] + st["val"] * epochs["original"] / r["infer"]
        ft_imgs = st["finetune_own"] + 2 * st["finetune_per_unseen"]
        ft_val = st["val"] + 2 * st["finetune_val_per_unseen"]
        finetune = ft_imgs * epochs["finetune"] / r["train_64"] + ft_val * epochs["finetune"] / r["infer"]
        n_ft = len([s for s in strategies if s != "original"])
        train_total += len(trainsets) * (original + n_ft * finetune)
        cluster_train = max(cluster_train, original + (finetune if n_ft else 0))
        predict = sum(n_sets.get(t, 5) for t in trainsets) * len(strategies) * st["test"] / r["infer"]
        eval_total += predict
        if "gradcam" in r:
            images = min(config["gradcam"]["images"], st["test"] // 2)
            per = 5 * images * len(config["gradcam"]["variant"]) / r["gradcam"]
            gc_total += len(trainsets) * len(strategies) * per
            cluster_eval = max(cluster_eval, per)
        if "ace" in r and arch in config["causal"]["architectures"]:
            per = 5 * min(config["causal"]["samples"], st["test"]) / r["ace"]
            ace_total += len(trainsets) * len(strategies) * per
            cluster_eval = max(cluster_eval, per)
        cluster_eval = max(cluster_eval, predict / (len(trainsets) * len(strategies)))
    n_det = len(trainsets) * len(strategies) * len(rates)
    rows.append(("train (every epoch)", f"{n_det} detectors", train_total, cluster_train))
    rows.append(("predict", f"{n_det} detectors x their test sets", eval_total, 0.0))
    rows.append(("Grad-CAM", f"{len(config['gradcam']['variant'])} variants", gc_total, 0.0))
    rows.append(("causal ACE", ", ".join(a for a in config["causal"]["architectures"] if a in rates), ace_total, 0.0))
    rows.append(("analyses after training (longest job)", "predict / Grad-CAM / ACE in parallel", 0.0, cluster_eval))
    return [(stage, work, one / 3600, cluster / 3600) for stage, work, one, cluster in rows]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="time per measurement")
    p.add_argument("--archs", nargs="+", default=list(models.names()), choices=list(models.names()))
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all cores)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    T.configure_backend(args.threads, deterministic=False)
    config = paper_config()
    pre = preprocessing_rates(args.seconds)
    png = png_rate(args.seconds / 2)
    rates = {}
    for arch in args.archs:
        rates[arch] = model_rates(arch, args.seconds)
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in rates[arch].items())
        print(f"{arch:14s} img/s: {shown}", flush=True)
    print(f"faces: {pre[0]:.1f} detections/s and {pre[1]:.0f} decoded frames/s per core (1280x720); "
          f"PNG decode {png:.0f} img/s; {os.cpu_count()} cores; backend {keras.config.backend()}")
    rows = project(config, pre, png, rates)
    print(f"\n{'stage':40s} {'work':46s} {'one device h':>13s} {'cluster path h':>15s}")
    for stage, work, one, cluster in rows:
        print(f"{stage:40s} {work:46s} {one:13.2f} {cluster:15.2f}")
    print(f"{'total':40s} {'':46s} {sum(r[2] for r in rows):13.2f} {sum(r[3] for r in rows):15.2f}")
    print(f"\nassumed frames per real video: {FRAMES_PER_VIDEO}; measured in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
