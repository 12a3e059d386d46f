import json
import os
import re
from pathlib import Path
import shlex

from snakemake.utils import validate

from dfstudy.config import check_config, config_file_order, resolve_input_paths
from dfstudy.models import registry
from dfstudy.splits import TRAINSET_PARTS, evaluation_sets, planned_parts, training_sources
from dfstudy.study import Study

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
TRAINING_SOURCES = training_sources(DATASETS, TRAINSETS, config["splits"]["finetune_from"])
# the published tables ship with the workflow, wherever --directory points
REFERENCE_TABLES = str(Path(workflow.basedir) / "reports" / "reference")
# and so do the study report's templates (dfstudy.report --templates)
REPORT_TEMPLATES = str(Path(workflow.basedir) / "reports" / "templates")
ARCHS = config["detectors"]["architectures"]
# the plugin modules that register more architectures (check_config imported them here): every job that
# builds or loads a model imports them too
PLUGINS = f"--plugins {shlex.quote(','.join(config['detectors']['plugins']))}" if config["detectors"]["plugins"] else ""
STRATEGIES = config["detectors"]["strategies"]
GRADCAM_VARIANTS = config["gradcam"]["variant"]
# the study's vocabulary (training sets, roles, detector names) for the analysis scripts: --study {STUDY_JSON}
STUDY = Study.from_config(config)
STUDY_JSON = shlex.quote(STUDY.to_json())
# and in words, for the report captions (reports/*.rst: snakemake.params.words)
STUDY_WORDS = STUDY.words()
# Threads of each training, prediction, Grad-CAM and causal job when run locally: the demo's small models
# gain little from a second thread, while a second job on the other core doubles the work done; GPU nodes
# get theirs from the profile (profiles/slurm: set-threads), and --set-threads overrides either.
MODEL_THREADS = 1
# Trainings go before the jobs that read their models (Snakemake's default priority is 0): fine-tunings wait
# on an original and every analysis on a detector, so a training that starts late (in the demo an XceptionNet
# original and its merge, 3.5 minutes) runs on alone at the end; started first, the analyses fill the cores.
TRAINING_PRIORITY = 1


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
    part="|".join(TRAINSET_PARTS),
    strategy="|".join(dict.fromkeys(["original", *STRATEGIES])),  # originals train whenever any strategy does
    trainset="|".join(map(re.escape, TRAINSETS)),
    arch="|".join(map(re.escape, ARCHS)),
    shard=r"\d+",
    variant="|".join(GRADCAM_VARIANTS),


def as_json(obj):
    """A config fragment as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(obj))


def corpus_flag(wildcards):
    """Indexing a synthetic source waits for the corpus to be rendered."""
    return f"{config['corpus']['root']}/corpus.csv" if config["corpus"]["synthesize"] else []


def training_frames(wildcards):
    """Faces per training-side video of a source that feeds training (0: as many as any other video)."""
    if wildcards.source not in TRAINING_SOURCES:
        return 0
    return config["preprocess"]["frames_per_training_video"] or 0


def face_manifests(wildcards=None):
    return {s: f"results/faces/{s}/manifest.parquet" for s in SOURCES}


def split_config():
    keys = ("sources", "datasets", "splits", "seed")
    return as_json({**{k: config[k] for k in keys}, "trainsets": TRAINSETS})


def final_targets():
    return [
        "results/splits/audit.csv",
        "results/tables/findings.json",
        "results/tables/comparison.json",
        "results/tables/findings_rq3.json",
        *rq3_figures(),
        "results/tables/findings_rq4.json",
        *(f"results/figures/fig5_{a}.png" for a in CAUSAL_ARCHS),
        "results/report/study.html",
        *(LOO_TABLES if LOO_ARCHS else []),
    ]


def detectors():
    """(trainset, arch, strategy) of every detector in the configured matrix."""
    return [(t, a, s) for t in TRAINSETS for a in ARCHS for s in STRATEGIES]


def training_inputs(wildcards):
    """Originals train on the training part; transfer, merge and adversarial fine-tune a copy of the original."""
    split = f"results/splits/{wildcards.trainset}"
    if wildcards.strategy == "original":
        return {"train": f"{split}/train.npz", "val": f"{split}/val.npz", "audit": "results/splits/audit.csv"}
    init = f"results/models/{wildcards.trainset}/{wildcards.arch}/original.keras"
    # fine-tuning picks its best epoch on the training set's and the fine-tuning sets' validation images
    return {
        "train": f"{split}/finetune.npz",
        "val": f"{split}/finetune_val.npz",
        "init": init,
        "audit": "results/splits/audit.csv",
    }


def training_options(wildcards):
    init = None
    if wildcards.strategy != "original":
        init = f"results/models/{wildcards.trainset}/{wildcards.arch}/original.keras"
    return detector_options(wildcards.arch, wildcards.strategy, init)


def detector_options(arch, strategy, init=None):
    """dfstudy.train options of one architecture under one strategy (detectors.*), --init when given."""
    det = config["detectors"]
    phase = "original" if strategy == "original" else "finetune"
    epochs = (det["epochs_per_architecture"] or {}).get(arch, {}).get(phase, det["epochs"][phase])
    opts = [
        f"--epochs {epochs}",
        f"--lr {det['learning_rate'][arch]}",
        f"--batch-size {det['batch_size'][phase]}",
        f"--loss {det['loss'].get(arch, 'binary_crossentropy')}",
        f"--seed {config['seed']}",
    ]
    if init:
        opts.append(f"--init {init}")
    if strategy == "adversarial":
        adv = det["adversarial"]
        opts.append(
            f"--reversal-strength {adv['strength']} --reversal-schedule {adv['schedule']}"
            f" --reversal-gamma {adv['gamma']} --domain-weight {adv['domain_weight']}"
        )
    if strategy == "transfer" and arch in det["transfer_layers"]:
        opts.append("--trainable-layers " + ",".join(det["transfer_layers"][arch]))
    if det["weights"] and det["weights"] in registry.get(arch).weights:  # the backbones that publish them
        opts.append(f"--weights {det['weights']}")
    if det["bn_momentum"] is not None:
        opts.append(f"--bn-momentum {det['bn_momentum']}")
    if det["patience"]:
        opts.append(f"--patience {det['patience']}")
    recalibrate = det["recalibrate_bn"]  # true, false, or the architectures that need it
    if recalibrate is True or (isinstance(recalibrate, list) and arch in recalibrate):
        opts.append("--recalibrate-bn")
    if det["mixed_precision"]:
        opts.append("--mixed-precision")
    if strategy == "original" and registry.get(arch).pretrain:  # PixelAnomaly's pixel model, on the reals only
        anomaly = det["anomaly"]
        opts.append(
            f"--pretrain-epochs {anomaly['pixel_epochs']} --pretrain-lr {anomaly['pixel_learning_rate']}"
            f" --pretrain-batch-size {anomaly['pixel_batch_size']}"
        )
    return " ".join(opts)


def split_out_pairs(datasets, out):
    """--split/--out pairs of a stage that loads its model once for several test sets; `out` has {d}."""
    return " ".join(f"--split results/splits/{d}/test.npz --out {out.format(d=d)}" for d in datasets)


def prediction_pairs(wildcards, folder):
    """--split/--out pairs: one model load scores every set the detector is evaluated on."""
    return split_out_pairs(evaluation_sets(DATASETS, wildcards.trainset), f"{folder}/{{d}}.parquet")


def prediction_files():
    """Every prediction make_tables reads: each configured detector on each of its test sets."""
    return [
        f"results/predictions/{t}/{a}/{s}/{d}.parquet" for t, a, s in detectors() for d in evaluation_sets(DATASETS, t)
    ]


def all_predictions():
    """The analysis folders that hold prediction_files() (a directory output is the unit of the DAG)."""
    return list(dict.fromkeys(str(Path(f).parent) for f in prediction_files()))


def rq3_datasets(trainset):
    """RQ3 compares heatmaps on the group's original test set and the unseen sets."""
    return [trainset] + [n for n, s in DATASETS.items() if s["role"] == "unseen"]


def heatmap_pairs(wildcards, folder):
    # dfstudy.gradcam writes one file per variant: {variant} stays in the path it is given
    return split_out_pairs(rq3_datasets(wildcards.trainset), f"{folder}/{{{{variant}}}}/{{d}}.npz")


def gradcam_options(folder):
    gradcam = config["gradcam"]
    options = " ".join(f"--variant {v}" for v in GRADCAM_VARIANTS)
    options += f" --n-images {gradcam['images']} --seed {config['seed']} --batch-size {gradcam['batch_size']}"
    deletion = gradcam["faithfulness"]
    if not deletion["images"]:
        return options
    return (
        f"{options} --faithfulness {folder}/faithfulness.csv"
        f" --faithfulness-images {deletion['images']} --faithfulness-fraction {deletion['fraction']}"
    )


def faithfulness_inputs():
    return [f"results/gradcam/{t}/{a}/{s}" for t, a, s in detectors()]


def heatmaps_of_group(wildcards):
    return [f"results/gradcam/{wildcards.trainset}/{wildcards.arch}/{s}" for s in STRATEGIES]


def group_heatmap_files(wildcards, input):
    """Per RQ3 test set: --dataset and the group's heatmap files of the variant (dfstudy.similarity compare)."""
    return " ".join(
        f"--dataset {s} --heatmaps " + " ".join(f"{d}/{wildcards.variant}/{s}.npz" for d in input)
        for s in rq3_datasets(wildcards.trainset)
    )


def ssim_tables():
    return [f"results/gradcam/ssim/{v}/{t}_{a}.csv" for v in GRADCAM_VARIANTS for t in TRAINSETS for a in ARCHS]


def rq3_figures():
    figures = [f"results/figures/fig3_ssim_{v}.png" for v in GRADCAM_VARIANTS]
    figures += [f"results/figures/fig2_heatmaps_{t}_{v}.png" for v in GRADCAM_VARIANTS for t in TRAINSETS]
    if config["gradcam"]["faithfulness"]["images"]:
        figures.append("results/figures/fig_faithfulness.png")
    return figures


def figure2_heatmaps(wildcards):
    return [f"results/gradcam/{wildcards.trainset}/{a}/{s}" for a in ARCHS for s in STRATEGIES]


CAUSAL_ARCHS = [a for a in config["causal"]["architectures"] if a in ARCHS]


def any_of(names):
    """A wildcard constraint matching exactly `names`; with none, nothing (Snakemake reads "" as no constraint)."""
    return "|".join(map(re.escape, names)) or "(?!)"


def rank_options(wildcards, folder):
    """dfstudy.causal rank's options: the architecture's analysis layer, as registered (check_config refused
    architectures without one), and one --split/--out pair per RQ3 set."""
    causal = config["causal"]
    pairs = split_out_pairs(rq3_datasets(wildcards.trainset), f"{folder}/{{d}}.parquet")
    return (
        f"--layer {registry.get(wildcards.arch).causal_layer} {pairs} --n-samples {causal['samples']}"
        f" --grid {causal['grid']} --measure {causal['measure']} --grid-range {causal['grid_range']}"
        f" --seed {config['seed']}"
    )


def analysis_splits(wildcards):
    """Every test split a detector's analyses read: its evaluation sets and RQ3's."""
    sets = dict.fromkeys([*evaluation_sets(DATASETS, wildcards.trainset), *rq3_datasets(wildcards.trainset)])
    return {d: f"results/splits/{d}/test.npz" for d in sets}


def analysis_stages(wildcards, output):
    """dfstudy.analyse's stages with their options, each writing into its output folder; rank only where the
    rule has a causal folder (causal.architectures)."""
    stages = [
        f"predict {prediction_pairs(wildcards, output.predictions)} --batch-size {config['evaluation']['batch_size']}",
        f"gradcam {heatmap_pairs(wildcards, output.gradcam)} {gradcam_options(output.gradcam)}",
    ]
    if "causal" in output.keys():
        stages.append(f"rank {rank_options(wildcards, output.causal)}")
    return " ".join(stages)


def causal_overlaps():
    return [f"results/causal/{t}/{a}/{s}_overlap.csv" for t in TRAINSETS for a in CAUSAL_ARCHS for s in STRATEGIES]


def trained_detectors():
    """(trainset, arch, strategy) of every model trained: the configured matrix and, where only transfer or
    merge are configured, the originals they start from."""
    base = ["original"] if "original" not in STRATEGIES and STRATEGIES else []
    return [(t, a, s) for t in TRAINSETS for a in ARCHS for s in base + STRATEGIES]


def packed_parts():
    """(dataset, part) of every split that is packed to .npz: what training, fine-tuning and testing read."""
    wanted = {(t, p) for t in TRAINSETS for p in ("train", "val")}
    if any(s != "original" for s in STRATEGIES):
        wanted |= {(t, p) for t in TRAINSETS for p in ("finetune", "finetune_val")}
    wanted |= {(d, "test") for t in TRAINSETS for d in evaluation_sets(DATASETS, t)}
    return [p for p in PARTS if p in wanted]


def report_jobs():
    """Wildcards of every job upstream of the study report, by rule (the report's own job excluded)."""
    dets = [dict(trainset=t, arch=a, strategy=s) for t, a, s in detectors()]
    return {
        "synthesize_corpus": [{}] if config["corpus"]["synthesize"] else [],
        "index_videos": [dict(source=s) for s in SOURCES],
        "align_faces": [dict(source=s, shard=n) for s in SOURCES for n in SHARDS],
        "merge_faces": [dict(source=s) for s in SOURCES],
        "make_splits": [{}],
        "audit_leakage": [{}],
        "pack_split": [dict(dataset=d, part=p) for d, p in packed_parts()],
        "train_detector": [dict(trainset=t, arch=a, strategy=s) for t, a, s in trained_detectors()],
        "analyse_detector": [d for d in dets if d["arch"] not in CAUSAL_ARCHS],
        "analyse_detector_rq4": [d for d in dets if d["arch"] in CAUSAL_ARCHS],
        "make_tables": [{}],
        "compare_families": [{}],
        "compare_heatmaps": [
            dict(variant=v, trainset=t, arch=a) for v in GRADCAM_VARIANTS for t in TRAINSETS for a in ARCHS
        ],
        "summarize_ssim": [{}],
        "plot_ssim": [dict(variant=v) for v in GRADCAM_VARIANTS],
        "plot_heatmaps": [dict(trainset=t, variant=v) for t in TRAINSETS for v in GRADCAM_VARIANTS],
        "summarize_faithfulness": [{}] if config["gradcam"]["faithfulness"]["images"] else [],
        "overlap_neurons": [d for d in dets if d["arch"] in CAUSAL_ARCHS],
        "summarize_neurons": [{}],
        "plot_neurons": [dict(arch=a) for a in CAUSAL_ARCHS],
    }


def benchmark_files(wildcards):
    """The benchmark file of every job upstream of the report, from each rule's own benchmark: pattern."""
    return [getattr(rules, name).benchmark.format(**w) for name, jobs in report_jobs().items() for w in jobs]


# Leave-one-out over the FF++ methods (beyond the study; rules/loo.smk): off while loo.architectures is empty
LOO = config["loo"]
LOO_ARCHS = LOO["architectures"]
LOO_TABLES = [f"results/tables/loo.{ext}" for ext in ("csv", "md", "json")]


def loo_config():
    return as_json({"loo": LOO, "seed": config["seed"]})


def loo_training_options(wildcards):
    """A leave-one-out detector trains as the study's originals of its architecture do."""
    return detector_options(wildcards.arch, "original")


def loo_predictions():
    """HELDOUT/ARCH=folder pairs of every leave-one-out detector's predictions (dfstudy.loo table)."""
    return {f"{h}/{a}": f"results/loo/predictions/{h}/{a}" for h in LOO["methods"] for a in LOO_ARCHS}
