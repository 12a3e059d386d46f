"""MesoInception's dilated 3x3 convolutions: zero-filled 5x5/7x7 kernels against native dilation.

Training and inference images/s of the two formulations of the same model (same weights, same
mathematics; ``tests/test_models.py`` proves outputs and gradients equal), with the batch already a
backend tensor, on the backend Keras runs on (``KERAS_BACKEND=jax`` for JAX):

    .venv/bin/python bench/mesoinception_dilation.py --size 256 --batch 64 --steps 20
"""

import argparse
import time

import keras
import numpy as np

from dfstudy import train as T
from dfstudy.models.mesoinception import ZeroFilledDilatedConv2D, mesoinception

FORMULATIONS = {"zero-filled": ZeroFilledDilatedConv2D, "native": keras.layers.Conv2D}


def rates(dilated_conv, size, batch, steps, warmup, seed=0):
    """(train, inference) images/s of MesoInception built with `dilated_conv`."""
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    y = keras.ops.convert_to_tensor(rng.integers(0, 2, (batch, 1)).astype("float32"))
    keras.utils.set_random_seed(seed)
    model = mesoinception((size, size, 3), dilated_conv=dilated_conv)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    timed = []
    for step in (lambda: model.train_on_batch(x, y), lambda: model.predict_on_batch(x)):
        for _ in range(warmup):  # trace / compile outside the clock
            out = step()
        start = time.perf_counter()
        for _ in range(steps):
            out = step()
        np.asarray(out)  # wait for the last step
        timed.append(steps * batch / (time.perf_counter() - start))
    return timed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    T.configure_backend(args.threads, deterministic=False)
    print(f"{'formulation':<13}{'size':>6}{'batch':>6}{'train img/s':>13}{'infer img/s':>13}")
    for name, conv in FORMULATIONS.items():
        train, infer = rates(conv, args.size, args.batch, args.steps, args.warmup)
        print(f"{name:<13}{args.size:>6}{args.batch:>6}{train:>13.1f}{infer:>13.1f}", flush=True)
    print(f"backend {keras.config.backend()}, keras {keras.__version__}")


if __name__ == "__main__":
    main()
