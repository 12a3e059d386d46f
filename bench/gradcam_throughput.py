"""Grad-CAM throughput: dfstudy.gradcam.heatmaps (batched) vs. one tf-explain explain() call per image.

The study ran ``GradCAM().explain(...)`` once per image. This bench times that against the batched path on the
same model and the same images, and checks that both give the same heatmaps:

- ``max_abs_diff_maps``: batched [0, 1] maps vs. maps computed along explain()'s own code path
  (``dfstudy.gradcam.heatmap_reference``);
- ``max_abs_diff_jet`` / ``share_pixels_diff_jet``: explain()'s pure JET image (``image_weight=0``) vs.
  ``colorize`` of the batched map (uint8 levels; a float round-off can flip one grey level, which JET turns
  into a few levels of one channel).

    .venv/bin/python bench/gradcam_throughput.py --size 256 --n-images 256 --n-explain 32 --threads 2 --repeats 3

The model is ``dfstudy.models.build(--arch, ...)`` with its random initial weights (speed and equality do not
depend on training). ``speedup_ceiling_forward_only`` divides explain()'s time by the model's compiled forward
pass alone on the same batches: the most any batched Grad-CAM can gain on the machine at hand.
"""

import argparse
import json
import logging
import platform
import time
import warnings

import cv2
import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="MesoNet")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--n-images", type=int, default=256, help="images for the batched path")
    p.add_argument("--n-explain", type=int, default=32, help="of those, images for the explain() path")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per path (best and median reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from tf_explain.core.grad_cam import GradCAM

    from dfstudy import gradcam
    from dfstudy.models import build

    keras.utils.set_random_seed(args.seed)
    model = build(args.arch, (args.size, args.size, 3))
    layer = gradcam.last_conv_layer(model)
    rng = np.random.default_rng(args.seed)
    # Smooth random images, so that maps are not pure noise.
    small = rng.integers(0, 256, (args.n_images, args.size // 8, args.size // 8, 3), dtype=np.uint8)
    images = np.stack([cv2.resize(im, (args.size, args.size), interpolation=cv2.INTER_CUBIC) for im in small])
    ref_images = images[: args.n_explain]

    def explain(image):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GradCAM().explain(
                (image[None], None), model, class_index=gradcam.FAKE_CLASS_INDEX, layer_name=layer,
                use_guided_grads=False, colormap=cv2.COLORMAP_JET, image_weight=0.0,
            )

    explain(ref_images[0])  # warm-up: first-call costs are not the per-image cost
    t0 = time.perf_counter()
    gradcam.heatmaps(model, images[: args.batch_size], layer, batch_size=args.batch_size)
    t_trace = time.perf_counter() - t0  # tracing the graph once, plus one batch

    # The floor of any batched Grad-CAM: the model's forward pass alone, compiled, same batches.
    forward = tf.function(lambda x: model(x, training=False))
    forward(images[: args.batch_size])

    # The machine is shared: alternate the paths and keep each one's best and median round.
    t_explain, t_maps, t_batched, t_forward = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for start in range(0, args.n_images, args.batch_size):
            forward(images[start : start + args.batch_size]).numpy()
        t_forward.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jet_explain = np.stack([explain(im) for im in ref_images])
        t_explain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        maps = gradcam.heatmaps(model, images, layer, batch_size=args.batch_size)
        t_maps.append(time.perf_counter() - t0)
        jet_batched = np.stack([gradcam.colorize(m) for m in maps])
        t_batched.append(time.perf_counter() - t0)

    ref_maps = np.stack([gradcam.heatmap_reference(model, im, layer) for im in ref_images])
    jet_diff = np.abs(jet_explain.astype(int) - jet_batched[: args.n_explain].astype(int))

    # seconds per image, best and median round
    per_image = {
        "explain": np.array(t_explain) / args.n_explain,
        "batched_maps": np.array(t_maps) / args.n_images,
        "batched_maps_jet": np.array(t_batched) / args.n_images,
        "forward_only": np.array(t_forward) / args.n_images,
    }
    stats = {k: {"best": v.min(), "median": float(np.median(v))} for k, v in per_image.items()}
    result = {
        "model": f"{args.arch}, layer {layer}",
        "size": args.size,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "n_batched": args.n_images,
        "n_explain": args.n_explain,
        "repeats": args.repeats,
        **{f"{k}_hz": {s: round(1 / t, 2) for s, t in v.items()} for k, v in stats.items()},
        "first_batch_incl_trace_s": round(t_trace, 3),
        # maps_jet is like for like (explain() colours its maps too); maps_only is what the workflow needs
        **{
            f"speedup_{k}": {s: round(stats["explain"][s] / stats[f"batched_{k}"][s], 2) for s in ("best", "median")}
            for k in ("maps_jet", "maps")
        },
        # explain() against the forward pass alone: no batched Grad-CAM on this machine can beat this ratio
        "speedup_ceiling_forward_only": {
            s: round(stats["explain"][s] / stats["forward_only"][s], 2) for s in ("best", "median")
        },
        "max_abs_diff_maps": float(np.abs(maps[: args.n_explain] - ref_maps).max()),
        "max_abs_diff_jet": int(jet_diff.max()),
        "share_pixels_diff_jet": float((jet_diff.max(axis=-1) > 0).mean()),
        "cpu": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
