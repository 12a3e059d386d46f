"""How training batches reach TensorFlow, and what that costs when two jobs share the cores.

``dfstudy.batches.Batches`` is a Keras ``PyDataset``. With Keras' default single worker, TensorFlow pulls it
through ``tf.data.Dataset.from_generator`` with autotuned prefetching; with more workers, through Keras'
ordered thread enqueuer with tf.data's autotuning off (``dfstudy.batches.FETCH_WORKERS``). For each
architecture and each feeding, demo-sized epochs (config/config.yaml's training images, face size and batch
size; one TensorFlow thread, what Snakemake gives a training job) are timed in fresh processes:

- ``one core``: one job pinned to one CPU, the share each job has when two run on two cores;
- ``side by side``: two identical jobs at once, unpinned, as ``snakemake --cores 2`` runs them.

The first epoch (tracing) is left out of the means. The losses of the two feedings are compared too: the
batches are the same, in the same order, so they should agree to the last bit.

    .venv/bin/python bench/batch_feeding.py [--archs EfficientNet XceptionNet] [--epochs 4]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

FEEDINGS = {"keras default (tf.data generator)": 1, "ordered enqueuer (dfstudy)": None}  # None: FETCH_WORKERS


def child(arch, workers, epochs, images, size, batch, pin):
    """Run in the child process: each epoch's seconds and training loss."""
    import time

    if pin is not None:
        os.sched_setaffinity(0, {pin})
    import keras
    import numpy as np

    from dfstudy import batches as B
    from dfstudy import models
    from dfstudy import train as T

    T.configure_backend(1, True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 2, images)
    keras.utils.set_random_seed(0)
    model = models.build(arch, (size, size, 3))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    seconds, losses = [], []
    for epoch in range(epochs):
        batches = B.Batches(x, y, batch, B.epoch_order(images, 0, epoch))
        batches.workers = workers or B.FETCH_WORKERS
        start = time.perf_counter()
        history = model.fit(batches, initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=0)
        seconds.append(time.perf_counter() - start)
        losses.append(history.history["loss"][-1])
    print(json.dumps({"seconds": seconds, "losses": losses}))


def mean_epoch(runs):
    """Mean seconds per epoch over `runs`, each run's first epoch (tracing) left out."""
    timed = [s for run in runs for s in run["seconds"][1:]]
    return sum(timed) / len(timed)


def launch(arch, workers, args, pin=None):
    spec = json.dumps([arch, workers, args.epochs, args.images, args.size, args.batch, pin])
    return subprocess.Popen([sys.executable, __file__, "--child", spec], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def result(process):
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"child failed with exit code {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    demo = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=["EfficientNet", "XceptionNet", "MesoInception"])
    p.add_argument("--epochs", type=int, default=4, help="epochs per run, the first (tracing) not counted")
    p.add_argument("--images", type=int, default=demo["splits"]["train"])
    p.add_argument("--size", type=int, default=demo["preprocess"]["face_size"])
    p.add_argument("--batch", type=int, default=demo["detectors"]["batch_size"]["original"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(*json.loads(args.child))
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the point is two jobs side by side")
    print(f"{args.images} images of {args.size} px, batch {args.batch}, one thread per job, "
          f"{os.cpu_count()} CPUs; seconds per epoch, epochs 2-{args.epochs}")
    print(f"{'architecture':<15}{'feeding':<36}{'one core':>10}{'side by side':>14}  losses")
    for arch in args.archs:
        losses = {}
        for name, workers in FEEDINGS.items():
            alone = result(launch(arch, workers, args, pin=min(os.sched_getaffinity(0))))
            pair = [result(process) for process in [launch(arch, workers, args) for _ in range(2)]]
            losses[name] = alone["losses"]

            same = "" if len(losses) == 1 else ("identical" if len(set(map(tuple, losses.values()))) == 1
                                                 else "DIFFER")
            print(f"{arch:<15}{name:<36}{mean_epoch([alone]):>10.1f}{mean_epoch(pair):>14.1f}  {same}", flush=True)


if __name__ == "__main__":
    main()
