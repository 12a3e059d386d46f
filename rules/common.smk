import json
import os
import re
from pathlib import Path
import shlex

from snakemake.utils import validate

from dfstudy.config import check_config, config_file_order, resolve_input_paths
from dfstudy.splits import evaluation_sets, planned_parts

validate(config, schema="../config/schema.yaml")
# dataset roots in a config file are read from that file's folder; --config ones from the working directory
resolve_input_paths(
    config,
    config_file_order(workflow.configfiles, workflow.config_settings.configfiles),
    workflow.config_settings.config,
)
check_config(config)

SOURCES = list(config["sources"])
DATASETS = config["datasets"]
TRAINSETS = config["detectors"]["trainsets"]
PARTS = planned_parts(DATASETS, TRAINSETS)
SHARDS = range(config["preprocess"]["shards"])
# the published tables ship with the workflow, wherever --directory points
REFERENCE_TABLES = str(Path(workflow.basedir) / "reports" / "reference")
ARCHS = config["detectors"]["architectures"]
STRATEGIES = config["detectors"]["strategies"]


def keras_backend():
    """Backend of training, prediction and causal analysis: detectors.backend, else $KERAS_BACKEND, else tensorflow."""
    backend = config["detectors"]["backend"] or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if backend not in ("tensorflow", "jax"):
        raise ValueError(f"KERAS_BACKEND={backend!r}: dfstudy runs on tensorflow or jax (config key detectors.backend)")
    return backend


# the four GPU rules: their backend, their conda env (CUDA builds when a GPU is required) and the GPU check
KERAS_BACKEND = keras_backend()
GPU_ENV = "../envs/train-gpu.yaml" if config["detectors"]["device"] == "gpu" else "../envs/train.yaml"
GPU_CHECK = "--require-gpu" if config["detectors"]["device"] == "gpu" else ""


wildcard_constraints:
    source="|".join(SOURCES),
    dataset="|".join(map(re.escape, DATASETS)),
    part="train|val|test|finetune",
    strategy="original|transfer|merge",
    trainset="|".join(map(re.escape, TRAINSETS)),
    arch="|".join(ARCHS),
    shard=r"\d+",


def as_json(obj):
    """A config fragment as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(obj))


def corpus_flag(wildcards):
    """Indexing a synthetic source waits for the corpus to be rendered."""
    return f"{config['corpus']['root']}/corpus.csv" if config["corpus"]["synthesize"] else []


def face_manifests(wildcards=None):
    return {s: f"results/faces/{s}/manifest.parquet" for s in SOURCES}


def split_config():
    keys = ("sources", "datasets", "splits", "seed")
    return as_json({**{k: config[k] for k in keys}, "trainsets": TRAINSETS})


def final_targets():
    return [
        "results/splits/audit.csv",
        "results/tables/findings.json",
        "results/tables/findings_rq3.json",
        "results/figures/fig3_ssim.png",
        *(f"results/figures/fig2_heatmaps_{t}.png" for t in TRAINSETS),
        "results/tables/findings_rq4.json",
        *(f"results/figures/fig5_{a}.png" for a in CAUSAL_ARCHS),
        "results/report/study.html",
    ]

def detectors():
    """(trainset, arch, strategy) of every detector in the configured matrix."""
    return [(t, a, s) for t in TRAINSETS for a in ARCHS for s in STRATEGIES]


def training_inputs(wildcards):
    """Originals train on the training part; transfer and merge fine-tune a copy of the original."""
    split = f"results/splits/{wildcards.trainset}"
    inputs = {"val": f"{split}/val.npz", "audit": "results/splits/audit.csv"}
    if wildcards.strategy == "original":
        return {**inputs, "train": f"{split}/train.npz"}
    init = f"results/models/{wildcards.trainset}/{wildcards.arch}/original.keras"
    return {**inputs, "train": f"{split}/finetune.npz", "init": init}


def training_options(wildcards):
    det = config["detectors"]
    phase = "original" if wildcards.strategy == "original" else "finetune"
    epochs = (det["epochs_per_architecture"] or {}).get(wildcards.arch, {}).get(phase, det["epochs"][phase])
    opts = [
        f"--epochs {epochs}",
        f"--lr {det['learning_rate'][wildcards.arch]}",
        f"--batch-size {det['batch_size']}",
        f"--seed {config['seed']}",
    ]
    if wildcards.strategy != "original":
        opts.append(f"--init results/models/{wildcards.trainset}/{wildcards.arch}/original.keras")
    if wildcards.strategy == "transfer" and wildcards.arch in det["transfer_layers"]:
        opts.append("--trainable-layers " + ",".join(det["transfer_layers"][wildcards.arch]))
    if det["weights"] and wildcards.arch in ("XceptionNet", "EfficientNet"):  # the backbones with published weights
        opts.append(f"--weights {det['weights']}")
    if det["bn_momentum"] is not None:
        opts.append(f"--bn-momentum {det['bn_momentum']}")
    if det["recalibrate_bn"]:
        opts.append("--recalibrate-bn")
    if det["mixed_precision"]:
        opts.append("--mixed-precision")
    return " ".join(opts)


def evaluation_splits(wildcards):
    return {d: f"results/splits/{d}/test.npz" for d in evaluation_sets(DATASETS, wildcards.trainset)}


def prediction_pairs(wildcards, output):
    """--split/--out pairs: one model load scores every set the detector is evaluated on."""
    sets = evaluation_sets(DATASETS, wildcards.trainset)
    return " ".join(f"--split results/splits/{d}/test.npz --out {output[0]}/{d}.parquet" for d in sets)


def all_predictions():
    return [f"results/predictions/{t}/{a}/{s}" for t, a, s in detectors()]


def rq3_datasets(trainset):
    """RQ3 compares heatmaps on the group's original test set and the unseen sets."""
    return [trainset] + [n for n, s in DATASETS.items() if s["role"] == "unseen"]


def heatmap_pairs(wildcards, output):
    return " ".join(f"--split results/splits/{d}/test.npz --out {output[0]}/{d}.npz" for d in rq3_datasets(wildcards.trainset))


def heatmaps_of_group(wildcards):
    return [f"results/gradcam/{wildcards.trainset}/{wildcards.arch}/{s}" for s in STRATEGIES]


def group_heatmap_files(wildcards, input):
    return " ".join(f"{d}/{wildcards.dataset}.npz" for d in input)


def ssim_tables():
    return [f"results/gradcam/ssim/{t}_{a}_{d}.csv" for t in TRAINSETS for a in ARCHS for d in rq3_datasets(t)]


def figure2_heatmaps(wildcards):
    return [f"results/gradcam/{wildcards.trainset}/{a}/{s}" for a in ARCHS for s in STRATEGIES]


CAUSAL_ARCHS = [a for a in config["causal"]["architectures"] if a in ARCHS]


def causal_pairs(wildcards, output):
    return " ".join(f"--split results/splits/{d}/test.npz --out {output[0]}/{d}.parquet" for d in rq3_datasets(wildcards.trainset))


def causal_overlaps():
    return [f"results/causal/{t}/{a}/{s}_overlap.csv" for t in TRAINSETS for a in CAUSAL_ARCHS for s in STRATEGIES]
