"""The architecture registry: plugins register, pass the config check, build, load in every job; the
layer-aggregation detector builds, names its layers as registered, learns and is scheduled by the workflow."""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from snakemake.utils import update_config, validate

from dfstudy import models
from dfstudy.config import ConfigError, check_config
from dfstudy.models import registry

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = ("MesoNet", "MesoInception", "ShallowNet", "XceptionNet", "EfficientNet", "LayerAggregation", "PixelAnomaly",
            "MidwayXception", "LightXception")
PLUGIN = "toy_detectors"
# a plugin as a user writes it, outside dfstudy: an architecture with a custom layer
PLUGIN_SOURCE = '''
import keras
from keras import layers

from dfstudy.models.registry import Architecture, register


@keras.saving.register_keras_serializable(package="toy_detectors")
class Negate(layers.Layer):
    """A custom layer: a saved ToyNet loads only where this module was imported."""

    def call(self, x):
        return -x


def toynet(input_shape, weights=None):
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = Negate(name="negate")(x)
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_prob")(x)
    return keras.Model(inputs, outputs, name="toynet")


register(Architecture("ToyNet", toynet, last_conv="conv", causal_layer="features",
                      transfer_layers=("conv", "fake_prob")))
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The toy plugin written to tmp_path and importable from there; the registry is restored afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    yield folder
    sys.modules.pop(PLUGIN, None)


def study_config(overrides):
    """config/config.yaml with ``overrides`` merged over it, validated (defaults filled) as common.smk does."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, overrides)
    validate(config, schema=str(ROOT / "config/schema.yaml"))
    return config


def dry_run(workdir, *args, env=None):
    """A dry run of the default target from ``workdir`` that prints the jobs' commands."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml"), *args]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


# the registry -------------------------------------------------------------------------------------------


def test_built_ins_are_registered_without_importing_keras():
    """rules/common.smk reads the registry at every parse: names and layers must not cost a Keras import."""
    code = ("import sys; from dfstudy.models import registry; "
            "print(registry.names(), registry.get('ShallowNet').causal_layer, registry.get('XceptionNet').weights, "
            "[m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{BUILT_IN} fc1 ('imagenet',) []"


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match=re.escape(f"Unknown architecture 'ResNet'; registered: {', '.join(BUILT_IN)}")):
        registry.get("ResNet")


def test_registering_a_taken_name_is_an_error(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    other = registry.Architecture("MesoNet", "elsewhere:mesonet", last_conv="c", causal_layer=None, transfer_layers=())
    with pytest.raises(ValueError, match="'MesoNet' is already registered"):
        registry.register(other)
    registry.register(registry.get("MesoNet"))  # the same record again (a module imported twice) is fine
    with pytest.raises(ValueError, match="builds models named like 'MesoNet'"):
        registry.register(registry.Architecture("mesonet", "x:y", last_conv="c", causal_layer=None, transfer_layers=()))


def test_a_builder_must_name_its_model_after_the_architecture(monkeypatch):
    """architecture_of recognises a loaded model by its name: a builder naming it otherwise fails at build."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register(registry.Architecture("Meso2", "dfstudy.models.mesonet:mesonet", last_conv="block4_conv",
                                            causal_layer="features", transfer_layers=("fake_prob",)))
    with pytest.raises(ValueError, match="Meso2: its builder returned a model named 'mesonet', expected 'meso2'"):
        models.build("Meso2", (32, 32, 3))


def test_published_weights_only_where_registered():
    with pytest.raises(ValueError, match=r"LayerAggregation takes no weights='imagenet' \(published weights: none\)"):
        models.build("LayerAggregation", (32, 32, 3), weights="imagenet")


# a plugin architecture ----------------------------------------------------------------------------------


def test_plugin_registers_passes_the_check_and_builds(plugin):
    config = study_config({"detectors": {"plugins": [PLUGIN], "architectures": ["MesoNet", "ToyNet"],
                                         "learning_rate": {"ToyNet": 0.01}},
                           "causal": {"architectures": ["MesoNet", "ToyNet"]}})
    assert "ToyNet" not in registry.names()
    check_config(config)
    assert registry.names() == (*BUILT_IN, "ToyNet")
    model = models.build("ToyNet", (32, 32, 3))
    assert models.architecture_of(model) == "ToyNet"
    assert model.get_layer(models.last_conv_layer("ToyNet")).output.shape == (None, 30, 30, 4)
    assert models.causal_layer("ToyNet") == "features" and models.transfer_layers("ToyNet") == ("conv", "fake_prob")
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert model.predict_on_batch(images).shape == (2, 1)


def test_a_typo_fails_the_check_listing_the_registered_names(plugin):
    config = study_config({"detectors": {"plugins": [PLUGIN], "architectures": ["MesoNet", "ToyNett"]}})
    with pytest.raises(ConfigError, match=re.escape(
            f"detectors.architectures: unknown architecture 'ToyNett' (registered: {', '.join(BUILT_IN)}, ToyNet;")):
        check_config(config)


def test_without_its_plugin_an_architecture_is_unknown():
    """A setting naming an unregistered architecture fails; a plugin that cannot be imported names the key."""
    with pytest.raises(ConfigError, match="detectors.learning_rate: unknown architecture 'ToyNet'"):
        check_config(study_config({"detectors": {"learning_rate": {"ToyNet": 0.01}}}))
    with pytest.raises(ConfigError, match="detectors.plugins: plugin module 'no_such_plugin' cannot be imported"):
        check_config(study_config({"detectors": {"plugins": ["no_such_plugin"]}}))


@pytest.mark.slow  # two evaluation subprocesses, about 20 s
def test_a_saved_plugin_model_loads_in_a_job_given_the_plugin(plugin, tmp_path):
    """python -m dfstudy.evaluate --plugins: the plugin's custom layer deserializes; without it, it does not."""
    from dfstudy.models import registry as reg

    reg.load_plugins([PLUGIN])
    model = models.build("ToyNet", (16, 16, 3))
    model.save(tmp_path / "toy.keras")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "test.npz", images=rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8),
             labels=np.array([0, 1, 0, 1], np.uint8), image_ids=np.array(["a", "b", "c", "d"]),
             video_ids=np.array(["v", "v", "w", "w"]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(ROOT / "workflow")]),
           "KERAS_BACKEND": keras.backend.backend()}
    cmd = [sys.executable, "-m", "dfstudy.evaluate", "--model", str(tmp_path / "toy.keras"),
           "--split", str(tmp_path / "test.npz"), "--out", str(tmp_path / "pred.parquet")]
    without = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert without.returncode != 0 and "Negate" in without.stderr, without.stderr[-2000:]
    run = subprocess.run([*cmd, "--plugins", PLUGIN], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    import pandas as pd

    scores = pd.read_parquet(tmp_path / "pred.parquet")["score"].to_numpy()
    np.testing.assert_allclose(scores, model.predict_on_batch(np.load(tmp_path / "test.npz")["images"]).ravel(),
                               rtol=1e-5, atol=1e-6)


def test_every_model_job_gets_the_plugins(plugin, tmp_path):
    """Training, prediction, Grad-CAM and the causal analysis of a plugin architecture all import it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(ROOT / "workflow")])}
    mine = tmp_path / "toy.yaml"  # a file: --config would pass the learning rate as a string
    mine.write_text(yaml.safe_dump({"detectors": {"plugins": [PLUGIN], "architectures": ["ToyNet"],
                                                  "learning_rate": {"ToyNet": 0.01}},
                                    "causal": {"architectures": ["ToyNet"]}}))
    out = dry_run(tmp_path, str(mine), env=env)
    commands = [line for line in out.splitlines() if "--model results/models/" in line or "dfstudy.train" in line]
    stages = {m for line in commands for m in re.findall(r"python -m dfstudy\.(\w+) --(?:model|arch)", line)}
    assert stages == {"train", "analyse"}, stages
    assert all(f"--plugins {PLUGIN}" in line for line in commands), [c for c in commands if "--plugins" not in c][:2]
    analyses = [line for line in commands if "dfstudy.analyse --model" in line]
    assert len(analyses) == 6 and all(" predict --split " in line and " gradcam --split " in line for line in analyses)
    assert all(" rank --layer features " in line for line in analyses)


# the layer-aggregation detector -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aggregation():
    return models.build("LayerAggregation", (64, 64, 3))


def test_layer_aggregation_names_the_registered_layers(aggregation):
    from dfstudy import causal, gradcam

    model, arch = aggregation, registry.get("LayerAggregation")
    assert model.layers[-1].name == "fake_prob" and model.output_shape == (None, 1)
    assert gradcam.last_conv_layer(model) == arch.last_conv == "block4_conv"
    assert set(arch.transfer_layers) <= {layer.name for layer in model.layers}
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 24_889
    # the aggregation: every block's pooled maps enter the causal layer, whose output alone feeds the head
    features = model.get_layer(arch.causal_layer)
    assert [t._keras_history.operation.name for t in features.input] == [f"block{i}_gap" for i in (1, 2, 3, 4)]
    assert features.output.shape == (None, 8 + 16 + 32 + 64)
    head, tail = causal.split_model(model, arch.causal_layer)
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(tail(head(images, training=False), training=False), model(images, training=False),
                               rtol=1e-5, atol=1e-6)


def test_layer_aggregation_learns_with_the_training_stage(tmp_path):
    from dfstudy import train as T

    T.configure_backend(deterministic=True)
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(110, 30, (96, 32, 32, 3)), 0, 255).astype(np.uint8)
    labels = (np.arange(96) % 2).astype(np.uint8)
    for i in np.flatnonzero(labels):  # the fakes carry a bright 8x8 square
        top, left = rng.integers(0, 24, 2)
        images[i, top : top + 8, left : left + 8] = 250
    train, val = {"images": images[:64], "labels": labels[:64]}, {"images": images[64:], "labels": labels[64:]}
    keras.utils.set_random_seed(3)
    model = models.build("LayerAggregation", (32, 32, 3))
    _, history, card = T.train_detector(model, train, val, 4, 1e-2, 16, 3, tmp_path / "work", backup_every=0)
    assert card["architecture"] == "LayerAggregation"
    loss = history["loss"].to_numpy()
    assert loss[-1] < 0.8 * loss[0], loss


def test_the_workflow_schedules_its_six_trainings(tmp_path):
    out = dry_run(tmp_path, "--config", "detectors={architectures: [MesoNet, LayerAggregation]}")
    trainings = [line for line in out.splitlines() if "python -m dfstudy.train --arch LayerAggregation " in line]
    assert sorted(re.search(r"--trainset (\S+) --strategy (\S+)", t).groups() for t in trainings) == [
        (t, s) for t in ("CELEB", "F2F") for s in ("merge", "original", "transfer")]
    assert all("--lr 0.001 " in t and "--plugins" not in t for t in trainings)
