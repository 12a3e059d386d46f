"""One detector's analyses in one process: its predictions on its test sets (RQ1, RQ2), its Grad-CAM maps
and their deletion test (RQ3) and, where its architecture has an analysis layer, its neurons' causal
effects (RQ4).

Why one process: as three jobs, each imported TensorFlow and loaded the model anew, 5-6 s before any work
on the 2-core CPU, about 4.5 of the demo's 40 minutes of job time. Each stage is the same function its own
command runs (``dfstudy.evaluate``, ``dfstudy.gradcam``, ``dfstudy.causal rank``), given that command's
options after the stage's name; ``--model`` and the options of the process (threads, plugins, GPU) come
first, once::

    cd results && python -m dfstudy.analyse --model models/CELEB/MesoNet/original.keras --threads 1 \\
        predict --split splits/CELEB/test.npz --out predictions/CELEB/MesoNet/original/CELEB.parquet \\
        gradcam --split splits/CELEB/test.npz --out 'gradcam/CELEB/MesoNet/original/{variant}/CELEB.npz' \\
        rank --layer features --split splits/CELEB/test.npz --out causal/CELEB/MesoNet/original/CELEB.parquet

Grad-CAM needs TensorFlow (tf-explain is TensorFlow code): on another backend (``detectors.backend: jax``)
it runs in a TensorFlow process of its own, the other stages in this one.
"""

import argparse
import logging
import os
import subprocess
import sys

from dfstudy import causal, device, evaluate, gradcam
from dfstudy.models import registry

log = logging.getLogger("dfstudy.analyse")  # not __name__: that is "__main__" under python -m

# stage name: (its command's option parser, its work on a loaded model), in the order they run
STAGES = {
    "predict": (evaluate.parse_args, evaluate.run),
    "gradcam": (gradcam.parse_args, gradcam.run),
    "rank": (causal.rank_args, causal.rank),
}


def _parser():
    p = argparse.ArgumentParser(prog="python -m dfstudy.analyse", description=__doc__.split("\n")[0],
                                epilog=f"then one or more of: {' | '.join(STAGES)} OPTIONS (that command's own)")
    p.add_argument("--model", required=True, help="detector .keras file")
    p.add_argument("--threads", type=int, default=None, help="cap TensorFlow intra/inter-op threads")
    device.add_arguments(p)
    registry.add_arguments(p)
    return p


def sections(argv):
    """Split `argv` at the stage names: the process' own options, then ``{stage: its options}``."""
    own, stages = [], {}
    current = own
    for token in argv:
        if token in STAGES:
            if token in stages:
                raise SystemExit(f"stage {token!r} given twice")
            current = stages[token] = []
        else:
            current.append(token)
    return own, stages


def main(argv=None):
    own, stages = sections(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(own)
    if not stages:
        parser.error(f"no stage to run: give one or more of {', '.join(STAGES)}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # every stage's options are checked before the model loads; each stage records --model in its outputs
    parsed = {name: STAGES[name][0](["--model", args.model, *rest]) for name, rest in stages.items()}
    import keras

    from dfstudy.train import configure_backend

    configure_backend(args.threads, deterministic=False)
    device.announce(args.require_gpu, log)
    model = evaluate.load_model(args.model, args.plugins)
    log.info("loaded %s", args.model)
    for name in STAGES:
        if name not in parsed:
            continue
        if name == "gradcam" and keras.config.backend() != "tensorflow":
            _gradcam_on_tensorflow(args, stages[name])
            continue
        log.info("stage %s", name)
        STAGES[name][1](parsed[name], model)


def _gradcam_on_tensorflow(args, options):
    """Run the Grad-CAM stage as ``python -m dfstudy.gradcam`` under TensorFlow (tf-explain needs it)."""
    command = [sys.executable, "-m", "dfstudy.gradcam", "--model", args.model, *options]
    command += [*(["--threads", str(args.threads)] if args.threads else []),
                *(["--plugins", ",".join(args.plugins)] if args.plugins else []),
                *(["--require-gpu"] if args.require_gpu else [])]
    log.info("stage gradcam on tensorflow, in a process of its own: %s", " ".join(command))
    subprocess.run(command, check=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})


if __name__ == "__main__":
    main()
