"""Checks of a configuration that a JSON schema cannot express; each error names the key and the reason.

Also where relative dataset paths start from: the config file that sets them (``resolve_input_paths``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

# keys of sources.<name> that name data the user brings (everything else the workflow writes itself)
INPUT_PATH_KEYS = ("root", "splits")


class ConfigError(ValueError):
    """A configuration error, raised before any job runs."""


def check_config(config: dict) -> None:
    """Raise ConfigError for dangling names, impossible sizes and missing dataset roots."""
    from dfstudy.datasets import ADAPTER_METHODS

    sources, datasets = config["sources"], config["datasets"]
    for name, spec in datasets.items():
        if spec["source"] not in sources:
            raise ConfigError(f"datasets.{name}.source: unknown source '{spec['source']}' (known: {', '.join(sources)})")
        methods = ADAPTER_METHODS[sources[spec["source"]]["adapter"]]
        if spec["method"] not in methods:
            raise ConfigError(f"datasets.{name}.method: '{spec['method']}' is not a method of source "
                              f"'{spec['source']}' (its methods: {', '.join(methods)})")
        if spec["role"] in ("specialised", "same_identity"):
            if spec.get("trainset") not in datasets or datasets[spec["trainset"]]["role"] != "train":
                raise ConfigError(f"datasets.{name}.trainset: must name a dataset with role 'train', got {spec.get('trainset')!r}")
    detectors = config["detectors"]
    for trainset in detectors["trainsets"]:
        if trainset not in datasets or datasets[trainset]["role"] != "train":
            raise ConfigError(f"detectors.trainsets: '{trainset}' is not a dataset with role 'train'")
    for name in config["splits"]["finetune_from"]:
        if name not in datasets:
            raise ConfigError(f"splits.finetune_from: unknown dataset '{name}'")
    check_architectures(config)
    check_loo(config)
    for key in ("train", "val", "test"):
        if config["splits"][key] % 2:
            raise ConfigError(f"splits.{key}: {config['splits'][key]} is odd; parts are balanced real/fake")
    for name, spec in sources.items():
        root = Path(spec["root"])
        if not rendered_by_workflow(config, root) and not root.is_dir():
            raise ConfigError(f"sources.{name}.root: {root.absolute()} does not exist; "
                              "point it at the downloaded dataset")


def check_architectures(config: dict) -> None:
    """Every architecture the config names is registered (after importing ``detectors.plugins``), every
    trained one has a learning rate, and every analysed one a causal layer.

    Per-architecture settings (learning_rate, loss, recalibrate_bn, epochs_per_architecture,
    transfer_layers) may name registered architectures that this run does not train: a run that narrows
    ``detectors.architectures`` keeps the settings it inherits for the others.
    """
    from dfstudy.models import registry

    detectors = config["detectors"]
    try:
        registry.load_plugins(detectors.get("plugins", []))
    except ImportError as err:
        raise ConfigError(f"detectors.plugins: {err}") from err
    known = registry.names()

    def check(key, archs):
        for arch in archs:
            if arch not in known:
                raise ConfigError(f"{key}: unknown architecture '{arch}' (registered: {', '.join(known)}; "
                                  "more come from plugin modules listed in detectors.plugins)")

    check("detectors.architectures", detectors["architectures"])
    recalibrate = detectors["recalibrate_bn"]
    check("detectors.recalibrate_bn", recalibrate if isinstance(recalibrate, list) else [])
    for key in ("learning_rate", "loss", "epochs_per_architecture", "transfer_layers"):
        check(f"detectors.{key}", detectors.get(key) or {})
    check("causal.architectures", config["causal"]["architectures"])
    for arch in detectors["architectures"]:
        if arch not in detectors["learning_rate"]:
            raise ConfigError(f"detectors.learning_rate: no learning rate for architecture '{arch}'")
    for arch in config["causal"]["architectures"]:
        if registry.get(arch).causal_layer is None:
            with_layer = [a for a in known if registry.get(a).causal_layer is not None]
            raise ConfigError(f"causal.architectures: '{arch}' has no causal analysis layer (architectures "
                              f"with one: {', '.join(with_layer)})")


def check_loo(config: dict) -> None:
    """The leave-one-out block (beyond the study) names an FF++-style source, methods of it, and registered
    architectures with a learning rate."""
    from dfstudy.datasets import ADAPTER_METHODS
    from dfstudy.models import registry

    loo = config["loo"]
    if not loo["architectures"]:
        return
    source = config["sources"].get(loo["source"])
    if source is None or source["adapter"] != "faceforensics":
        raise ConfigError(f"loo.source: '{loo['source']}' must be a source with the faceforensics adapter "
                          "(the protocol needs its official train/val/test videos)")
    for method in loo["methods"]:
        if method not in ADAPTER_METHODS["faceforensics"]:
            raise ConfigError(f"loo.methods: '{method}' is not a FaceForensics++ method "
                              f"({', '.join(ADAPTER_METHODS['faceforensics'])})")
    for arch in loo["architectures"]:
        if arch not in registry.names():
            raise ConfigError(f"loo.architectures: unknown architecture '{arch}' (registered: "
                              f"{', '.join(registry.names())})")
        if arch not in config["detectors"]["learning_rate"]:
            raise ConfigError(f"detectors.learning_rate: no learning rate for architecture '{arch}' "
                              "(loo.architectures)")


def rendered_by_workflow(config: dict, path) -> bool:
    """Whether ``path`` lies in the synthetic corpus that the workflow renders (an output, not an input)."""
    if not config["corpus"]["synthesize"]:
        return False
    corpus, path = Path(os.path.normpath(config["corpus"]["root"])), Path(os.path.normpath(path))
    return path == corpus or corpus in path.parents


def config_file_order(loaded, given) -> list[Path]:
    """Config files in the order Snakemake merges them: the Snakefile's ``configfile:``, then each
    ``--configfile``. ``workflow.configfiles`` (``loaded``) lists the latter (``given``) first, although
    they are merged last.
    """
    given = [Path(f).absolute() for f in given]
    return [f for f in (Path(f).absolute() for f in loaded) if f not in given] + given


def resolve_input_paths(config: dict, config_files, overrides: Mapping | None = None) -> None:
    """Make relative source paths relative to the config file that sets them, in place.

    A relative ``sources.<name>.root`` or ``sources.<name>.splits`` is joined to the folder of the last of
    ``config_files`` (in merge order) that sets it, so a config file can sit next to its data. It stays
    relative to the working directory when it comes from ``overrides`` (``--config``; also when the
    merged value differs from the file's, as only an override can make it), or when it lies inside the
    synthetic corpus the workflow renders (an output, like everything under ``results/``).
    """
    files = [(Path(f).absolute(), _load(f)) for f in config_files]
    for name, spec in config["sources"].items():
        for key in INPUT_PATH_KEYS:
            value = spec.get(key)
            if value is None or Path(value).is_absolute() or rendered_by_workflow(config, value):
                continue
            origin = _origin(files, overrides, ("sources", name, key), value)
            if origin is not None:
                spec[key] = os.path.normpath(origin.parent / value)


def _origin(files, overrides, keys, value) -> Path | None:
    """The config file that set ``value`` at ``keys``: the last file to set it, unless --config did."""
    if _get(overrides, *keys) is not None:
        return None
    set_by = [(f, _get(data, *keys)) for f, data in files if _get(data, *keys) is not None]
    return set_by[-1][0] if set_by and set_by[-1][1] == value else None


def _load(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _get(tree, *keys):
    """``tree[k1][k2]...``, or None where a level is missing."""
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree
