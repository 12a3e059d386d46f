"""Which Keras backend and which device a job computes on.

Every job of a GPU rule (training, prediction, Grad-CAM, causal analysis) logs this line first, and each
model card records it. Why: a scheduler that reserves a GPU does not make the code use one (a CPU-only
build of the backend runs on the CPU beside an idle GPU), and without a log line nobody notices until the
bill. With ``--require-gpu`` (the rules pass it when the config says ``detectors.device: gpu``) a job
that finds no GPU stops at once with what to install, instead of running for days on the CPU.
"""

import logging

LOG = logging.getLogger("dfstudy.device")
GPU_INSTALL = 'pip install -e ".[gpu]"  (or --sdm conda, which uses envs/train-gpu.yaml for these rules)'


def accelerators():
    """Names of the GPUs the running backend can compute on, e.g. ["NVIDIA H200"]; [] on CPU."""
    import keras  # here, not at the top: `add_arguments` serves commands that may never load a backend

    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    raise ValueError(f"dfstudy runs on the tensorflow or jax backend, not {backend!r}")


def runtime():
    """``{"backend": "jax", "device": "gpu: NVIDIA H200"}`` or ``{..., "device": "cpu"}`` for this process."""
    import keras

    gpus = accelerators()
    device = f"gpu: {', '.join(sorted(set(gpus)))}" if gpus else "cpu"
    return {"backend": keras.config.backend(), "device": device}


def announce(require_gpu=False, log=LOG):
    """Log the backend and device; with `require_gpu`, raise when the backend sees no GPU.

    Returns
    -------
    dict
        What :func:`runtime` returns.
    """
    import keras

    info = runtime()
    log.info("Keras %s on %s, computing on %s", keras.__version__, info["backend"], info["device"])
    if require_gpu and info["device"] == "cpu":
        raise RuntimeError(
            f"detectors.device is 'gpu' but the {info['backend']} backend sees no GPU: this environment has a "
            f"CPU-only build, or the job got no GPU. Install the CUDA build with {GPU_INSTALL}, or set "
            "detectors.device: auto to allow the CPU."
        )
    return info


def add_arguments(parser):
    """The ``--require-gpu`` flag every GPU-rule command takes."""
    parser.add_argument("--require-gpu", action="store_true",
                        help="fail at once if the backend sees no GPU (detectors.device: gpu)")
