"""Training throughput of the real input pipeline against a ceiling with the batch already on the device.

For each architecture: images/s of ``model.fit`` over ``dfstudy.batches.Batches`` (uint8 gathered from an
in-memory array in a shuffled order, as ``train_detector`` feeds it), next to images/s of
``train_on_batch`` repeated on one batch converted to a backend tensor once (no gather, no host-to-device
copy). A ratio near 1 means the pipeline is not the bottleneck.

    .venv/bin/python bench/train_throughput.py --size 256 --steps 200 --batch 64 --archs MesoNet ShallowNet
"""

import argparse
import time

import keras
import numpy as np

from dfstudy import models
from dfstudy import train as T


def _compiled(name, size):
    model = models.build(name, (size, size, 3))
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy", metrics=["accuracy"])
    return model


def pipeline_rate(name, size, steps, batch, pool, warmup, seed=0):
    """Images/s of fit() over Batches; the pool of distinct images is reused to bound memory."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (pool, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, pool).astype(np.uint8)
    model = _compiled(name, size)
    warm = T.Batches(images, labels, batch, rng.integers(0, pool, warmup * batch))
    model.fit(warm, epochs=1, shuffle=False, verbose=0)  # trace / compile outside the clock
    timed = T.Batches(images, labels, batch, rng.integers(0, pool, steps * batch))
    start = time.perf_counter()
    model.fit(timed, epochs=1, shuffle=False, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def resident_rate(name, size, steps, batch, warmup, seed=0):
    """Images/s of train_on_batch on one batch that is already a backend tensor."""
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    y = keras.ops.convert_to_tensor(rng.integers(0, 2, (batch, 1)).astype("float32"))
    model = _compiled(name, size)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_on_batch(x, y)
    float(np.asarray(logs[0]))  # wait for the last step
    return steps * batch / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--pool", type=int, default=1024, help="distinct images in memory")
    p.add_argument("--archs", nargs="+", default=list(models.names()), choices=list(models.names()))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--no-determinism", dest="deterministic", action="store_false")
    args = p.parse_args(argv)
    T.configure_backend(args.threads, args.deterministic)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    rows = []
    for name in args.archs:
        piped = pipeline_rate(name, args.size, args.steps, args.batch, args.pool, args.warmup)
        ceiling = resident_rate(name, args.size, args.steps, args.batch, args.warmup)
        if not rows:
            print(f"{'arch':<14}{'size':>6}{'batch':>6}{'steps':>6}{'pipeline img/s':>16}{'resident img/s':>16}"
                  f"{'ratio':>7}")
        rows.append((name, piped, ceiling))
        print(f"{name:<14}{args.size:>6}{args.batch:>6}{args.steps:>6}{piped:>16.1f}{ceiling:>16.1f}"
              f"{piped / ceiling:>7.2f}", flush=True)
    print(f"backend {keras.config.backend()}, keras {keras.__version__}, policy {keras.config.dtype_policy().name}")


if __name__ == "__main__":
    main()
