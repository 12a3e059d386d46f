"""Which CPU path trains the demo's detectors fastest, and what exactness costs there.

For each architecture, in a fresh process per setting (backend and determinism are process-wide), one
demo-sized epoch (config/config.yaml's training images, face size and batch; one thread, what a training
job gets from Snakemake) is
timed after a warm-up epoch, on TensorFlow with op determinism (the workflow's setting), TensorFlow
without it, and JAX. Beside it: the per-epoch extras of ``dfstudy.train`` (BatchNormalization
recalibration, validation of 100 images, the resumable backup and the best-model save) and whether two
same-seed runs end with identical weights.

    .venv/bin/python bench/cpu_training_paths.py [--archs MesoNet XceptionNet] [--images 300]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SETTINGS = {  # name: (KERAS_BACKEND, TensorFlow op determinism)
    "tensorflow": ("tensorflow", True),
    "tensorflow-nondeterministic": ("tensorflow", False),
    "jax": ("jax", True),
}


def measure(arch, deterministic, images, size, batch):
    """Run in the child process: seconds of the timed epoch, the extras, and a weights fingerprint."""
    import keras
    import numpy as np

    from dfstudy import models
    from dfstudy import train as T

    T.configure_backend(1, deterministic)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 2, images)

    def fitted(epochs):
        keras.utils.set_random_seed(1)
        model = models.build(arch, (size, size, 3))
        model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
        seconds = []
        for epoch in range(epochs):
            start = time.perf_counter()
            model.fit(T.Batches(x, y, batch, T.epoch_order(images, 1, epoch)), epochs=1, verbose=0, shuffle=False)
            seconds.append(time.perf_counter() - start)
        return model, seconds

    model, seconds = fitted(2)
    trained = [keras.ops.convert_to_numpy(w) for w in model.weights]  # before the extras touch BN statistics
    out = {"epoch_s": seconds[1], "first_epoch_s": seconds[0]}
    timed = {
        "recalibrate_s": lambda: T.recalibrate_batchnorm(model, x),
        "validate_100_s": lambda: model.evaluate(T.Batches(x[:100], y[:100], batch), verbose=0),
        "backup_s": lambda: T._Checkpoint(tempfile.mkdtemp(), {}).save(model, []),
        "save_best_s": lambda: model.save(os.path.join(tempfile.mkdtemp(), "best.keras")),
    }
    for name, step in timed.items():
        start = time.perf_counter()
        step()
        out[name] = time.perf_counter() - start
    again, _ = fitted(2)
    out["same_seed_identical"] = all(
        np.array_equal(a, keras.ops.convert_to_numpy(b)) for a, b in zip(trained, again.weights)
    )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=["MesoNet", "MesoInception", "ShallowNet", "XceptionNet", "EfficientNet"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    demo = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())
    p.add_argument("--images", type=int, default=demo["splits"]["train"])
    p.add_argument("--size", type=int, default=demo["preprocess"]["face_size"])
    p.add_argument("--batch", type=int, default=demo["detectors"]["batch_size"]["original"])
    p.add_argument("--child", nargs=2, metavar=("ARCH", "DETERMINISTIC"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        arch, deterministic = args.child[0], args.child[1] == "1"
        print(json.dumps(measure(arch, deterministic, args.images, args.size, args.batch)))
        return
    import pandas as pd

    rows = []
    for arch in args.archs:
        for setting in args.settings:
            backend, deterministic = SETTINGS[setting]
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            cmd = [sys.executable, __file__, "--child", arch, str(int(deterministic)), "--images", str(args.images),
                   "--size", str(args.size), "--batch", str(args.batch)]
            start = time.perf_counter()
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if run.returncode:
                raise SystemExit(f"{arch} {setting} failed:\n{run.stderr[-2000:]}")
            result = json.loads(run.stdout.strip().splitlines()[-1])
            rows.append({"architecture": arch, "setting": setting, **result,
                         "process_s": time.perf_counter() - start})
            print(f"{arch:13s} {setting:28s} epoch {result['epoch_s']:6.1f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    print(f"\none epoch of {args.images} images of {args.size}x{args.size}, batch {args.batch}, one thread "
          f"({os.cpu_count()} cores here); extras are per epoch of dfstudy.train\n")
    print(table.round(2).to_markdown(index=False))


if __name__ == "__main__":
    main()
