"""Checks of a configuration that a JSON schema cannot express; each error names the key and the reason."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A configuration error, raised before any job runs."""


def check_config(config: dict) -> None:
    """Raise ConfigError for dangling names, impossible sizes and missing dataset roots."""
    sources, datasets = config["sources"], config["datasets"]
    for name, spec in datasets.items():
        if spec["source"] not in sources:
            raise ConfigError(f"datasets.{name}.source: unknown source '{spec['source']}' (known: {', '.join(sources)})")
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
    for arch in detectors["architectures"]:
        if arch not in detectors["learning_rate"]:
            raise ConfigError(f"detectors.learning_rate: no learning rate for architecture '{arch}'")
    for key in ("train", "val", "test"):
        if config["splits"][key] % 2:
            raise ConfigError(f"splits.{key}: {config['splits'][key]} is odd; parts are balanced real/fake")
    synthetic_root = Path(config["corpus"]["root"]) if config["corpus"]["synthesize"] else None
    for name, spec in sources.items():
        root = Path(spec["root"])
        will_be_rendered = synthetic_root is not None and (root == synthetic_root or synthetic_root in root.parents)
        if not will_be_rendered and not root.is_dir():
            raise ConfigError(f"sources.{name}.root: {root} does not exist; point it at the downloaded dataset")
