import json
import re
import shlex

from snakemake.utils import validate

from dfstudy.config import check_config
from dfstudy.splits import planned_parts

validate(config, schema="../config/schema.yaml")
check_config(config)

SOURCES = list(config["sources"])
DATASETS = config["datasets"]
TRAINSETS = config["detectors"]["trainsets"]
PARTS = planned_parts(DATASETS, TRAINSETS)
SHARDS = range(config["preprocess"]["shards"])


wildcard_constraints:
    source="|".join(SOURCES),
    dataset="|".join(map(re.escape, DATASETS)),
    part="train|val|test|finetune",
    shard=r"\d+",


def as_json(obj):
    """A config fragment as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(obj))


def corpus_flag(wildcards):
    """Indexing a synthetic source waits for the corpus to be rendered."""
    return "results/corpus/corpus.csv" if config["corpus"]["synthesize"] else []


def face_manifests(wildcards=None):
    return {s: f"results/faces/{s}/manifest.parquet" for s in SOURCES}


def split_config():
    keys = ("sources", "datasets", "splits", "seed")
    return as_json({**{k: config[k] for k in keys}, "trainsets": TRAINSETS})


def final_targets():
    return [
        "results/splits/audit.csv",
        *(f"results/splits/{d}/{p}.npz" for d, p in PARTS),
    ]
