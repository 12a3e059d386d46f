"""Benchmark: vectorised ACE (dfstudy.causal.ace) against the per-neuron loop the study's code runs.

Same detector, same samples, same analysis layer for both. The loop is timed on an evenly spaced subset
of neurons when the whole layer would take longer than --loop-budget seconds, and its time is
extrapolated to the full layer (the output says so). Effects are compared on the neurons both computed.

Two loops are timed: "graph" (one compiled ``predict_on_batch`` tail forward per neuron and grid value,
the fastest honest loop) and "predict" (``tail.predict(x)`` with Keras' default batch of 32, exactly as
the study's code calls it). The head forward pass (images -> analysis layer) is the same for every
method; it is timed once and reported separately, and end-to-end speed-ups include it.

    .venv/bin/python bench/ace_speed.py                 # MesoNet at 256 px, 1,920 random images
    .venv/bin/python bench/ace_speed.py --samples 240   # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="MesoNet", help="dfstudy.models architecture (default MesoNet)")
    p.add_argument("--model", help="a trained .keras detector instead of a freshly built one")
    p.add_argument("--layer", help="analysis layer (default: dfstudy.models.causal_layer(arch))")
    p.add_argument("--size", type=int, default=256, help="image side (default 256: 1,024 MesoNet features)")
    p.add_argument("--samples", type=int, default=1920, help="random uint8 images (default 1,920)")
    p.add_argument("--grid", type=int, default=4)
    p.add_argument("--method", default="auto", choices=("auto", "rank1", "batched"), help="vectorised path")
    p.add_argument("--loop-budget", type=float, default=60.0, help="seconds for the graph loop before extrapolating")
    p.add_argument("--predict-budget", type=float, default=20.0,
                   help="seconds for the study-style predict() loop (0 skips it)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _loop_timed(causal, tail, h, grid, d, budget, via):
    """Time the loop on as many evenly spaced neurons as fit in `budget` s; return (df, seconds for all d, n timed)."""
    pilot = np.linspace(0, d - 1, 2).astype(int)
    causal.ace_loop_from_features(tail, h, grid, neurons=pilot[:1], via=via)  # warm-up (tracing)
    _, t_pilot = _timed(causal.ace_loop_from_features, tail, h, grid, neurons=pilot, via=via)
    per_neuron = t_pilot / len(pilot)
    n = int(min(d, max(len(pilot), budget // max(per_neuron, 1e-9))))
    neurons = np.unique(np.linspace(0, d - 1, n).astype(int))
    df, t = _timed(causal.ace_loop_from_features, tail, h, grid, neurons=neurons, via=via)
    return df, t * d / len(neurons), len(neurons)


def main(argv=None):
    args = _parse(argv)
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import keras

    from dfstudy import causal

    keras.utils.set_random_seed(args.seed)
    if args.model:
        model = keras.saving.load_model(args.model, compile=False)
        layer = args.layer or "features"
        source = args.model
    else:
        try:
            from dfstudy.models import build, causal_layer
            model, layer = build(args.arch, (args.size, args.size, 3)), args.layer or causal_layer(args.arch)
            source = f"dfstudy.models.build({args.arch!r}, ({args.size}, {args.size}, 3)), freshly initialised"
        except ImportError:
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
            from test_causal import _meso_like
            model, layer = _meso_like(args.size)
            source = f"Meso-like stand-in at {args.size} px (dfstudy.models not importable)"
    size = model.inputs[0].shape[1]
    images = np.random.default_rng(args.seed).integers(0, 256, size=(args.samples, size, size, 3), dtype=np.uint8)

    print(f"detector: {source}; analysis layer {layer!r}")
    print(f"backend {keras.backend.backend()} (keras {keras.__version__}), {os.cpu_count()} CPUs, "
          f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}, "
          f"{platform.processor() or platform.machine()}")
    head, tail = causal.split_model(model, layer)
    causal.features(head, images[:8])  # warm-up (tracing)
    h, t_head = _timed(causal.features, head, images)
    d = h.reshape(len(h), -1).shape[1]
    print(f"samples {len(h)}, neurons {d}, grid {args.grid}: {d * args.grid:,} interventions")
    print(f"head forward (shared by all methods): {t_head:.2f} s")

    fast, t_fast_cold = _timed(causal.ace_from_features, tail, h, args.grid, method=args.method)
    warm = [_timed(causal.ace_from_features, tail, h, args.grid, method=args.method) for _ in range(3)]
    fast, t_fast = warm[0][0], min(t for _, t in warm)
    print(f"vectorised ({fast.attrs['method']} path): {t_fast:.3f} s warm (best of 3), {t_fast_cold:.3f} s "
          "first call (includes compiling)")

    fast = fast.set_index("neuron")
    results = {}
    for via, budget in (("graph", args.loop_budget), ("predict", args.predict_budget)):
        if budget <= 0:
            continue
        loop, t_loop, n_timed = _loop_timed(causal, tail, h, args.grid, d, budget, via)
        diff = np.abs(fast.loc[loop["neuron"], "effect"].to_numpy() - loop["effect"].to_numpy()).max()
        how = "measured" if n_timed == d else f"EXTRAPOLATED from {n_timed} of {d} neurons"
        print(f"loop via {via}: {t_loop:.2f} s for all {d} neurons ({how}); "
              f"max |effect difference| on those {n_timed} neurons: {diff:.2e}")
        results[via] = t_loop

    print("\nspeed-up of the vectorised ACE over the loop")
    for via, t_loop in results.items():
        print(f"  {via:8s} interventions only: {t_loop / t_fast:8.0f}x warm, {t_loop / t_fast_cold:8.0f}x first call;"
              f"  end to end incl. head: {(t_head + t_loop) / (t_head + t_fast_cold):6.1f}x")
    ranking = causal.rank_neurons(fast.reset_index())
    print(f"top neurons: {ranking[:8].tolist()}")


if __name__ == "__main__":
    main()
