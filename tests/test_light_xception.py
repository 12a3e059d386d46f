"""Seed 004's Xception variants (beyond the study): the layers of Keras' Xception where they keep them, the
parameters their changes add or remove, saving, the transfer strategy, training and the workflow's DAG."""

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from dfstudy import gradcam, models
from dfstudy import train as T
from dfstudy.models import light_xception as LX
from dfstudy.models import registry

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("MidwayXception", "LightXception")


def _params(model):
    return sum(int(np.prod(w.shape)) for w in model.weights)


def _images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def keras_xception():
    """Keras' own Xception backbone at 64 px with random weights (ImageNet's would be a download)."""
    keras.utils.set_random_seed(0)
    return keras.applications.Xception(include_top=False, weights=None, input_tensor=keras.Input((64, 64, 3)))


@pytest.fixture(scope="module")
def at64():
    return {name: models.build(name, (64, 64, 3)) for name in ("XceptionNet", *VARIANTS)}


def test_the_flows_rebuild_keras_xception_layer_for_layer(keras_xception):
    """With eight middle blocks and no midway change, xception_flows is Keras' Xception: every weighted
    layer takes a Keras layer's weights, and the outputs agree."""
    inputs = keras.Input((64, 64, 3))
    ours = keras.Model(inputs, LX.xception_flows(inputs))
    copied = LX.copy_xception_weights(keras_xception, ours)
    assert copied == [layer.name for layer in ours.layers if layer.weights]
    assert _params(ours) == _params(keras_xception) == 20_861_480
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(ours(x, training=False), keras_xception([x], training=False), rtol=1e-4, atol=1e-4)


def test_light_xception_keeps_xceptions_layers_but_four_middle_blocks(keras_xception, at64):
    model = models.build("LightXception", (64, 64, 3))
    copied = LX.copy_xception_weights(keras_xception, model)
    # every backbone layer is one of Xception's; only the head starts at random
    assert set(copied) == {layer.name for layer in model.layers if layer.weights} - {"fake_prob"}
    keras_shortcuts = [layer for layer in keras_xception.layers
                       if isinstance(layer, keras.layers.Conv2D) and not layer.name.startswith("block")]
    for mine, theirs in (("block8_sepconv3", "block8_sepconv3"), ("block14_sepconv2_bn", "block14_sepconv2_bn"),
                         ("block13_shortcut", keras_shortcuts[-1].name)):
        for a, b in zip(model.get_layer(mine).get_weights(), keras_xception.get_layer(theirs).get_weights()):
            np.testing.assert_array_equal(a, b)
    names = {layer.name for layer in model.layers}
    assert "block8_add" in names and not any(n.startswith(("block9_", "block12_")) for n in names)
    # exactly four middle blocks fewer: 3 separable convs (depthwise + pointwise) and their BN each
    per_block = 3 * (9 * 728 + 728 * 728 + 4 * 728)
    assert _params(at64["XceptionNet"]) - _params(at64["LightXception"]) == 4 * per_block


def test_midway_xception_has_grouped_modules_and_1x1_middle_shortcuts(at64):
    model = at64["MidwayXception"]
    group = model.get_layer("block5_sepconv1_group")
    assert isinstance(group, LX.PairGroupedConv2D) and group.kernel.shape == (3, 3, 728, 2)  # 18 weights a channel
    assert model.get_layer("block5_sepconv1").kernel.shape == (1, 1, 728, 728)
    add = model.get_layer("block5_add")
    assert {t._keras_history.operation.name for t in add.input} == {"block5_sepconv3_bn", "block5_shortcut_bn"}
    assert not any(isinstance(layer, keras.layers.SeparableConv2D) for layer in model.layers)
    # the grouped kernels double the depthwise ones (9 weights per input channel more), and each
    # middle block gains a 728x728 1x1 conv with its BN
    inputs = [layer.input.shape[-1] for layer in at64["XceptionNet"].layers
              if isinstance(layer, keras.layers.SeparableConv2D)]
    extra = 9 * sum(inputs) + 8 * (728 * 728 + 4 * 728)
    assert _params(model) - _params(at64["XceptionNet"]) == extra


def test_pair_grouped_conv_is_a_grouped_convolution():
    """Same outputs as Conv2D(groups=C // 2) once its kernel is laid out as the depthwise one."""
    channels = 8
    x = np.random.default_rng(3).normal(size=(2, 9, 9, channels)).astype("float32")
    grouped = keras.layers.Conv2D(channels, 3, padding="same", groups=channels // 2, use_bias=False)
    expected = keras.ops.convert_to_numpy(grouped(x))
    kernel = keras.ops.convert_to_numpy(grouped.kernel)  # (3, 3, 2 inputs of a group, C outputs)
    pair = LX.PairGroupedConv2D(kernel_size=3, padding="same", use_bias=False)
    pair.build(x.shape)
    # input c = 2g + i, output j of group g: the grouped kernel's [i, 2g + j]
    pair.set_weights([np.stack([kernel[:, :, c % 2, 2 * (c // 2) : 2 * (c // 2) + 2] for c in range(channels)], 2)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pair(x)), expected, rtol=1e-5, atol=1e-5)
    assert pair.compute_output_shape((None, 9, 9, channels)) == (None, 9, 9, channels)


def test_parameter_counts_order_light_xception_midway(at64):
    """The paper: LightXception is lighter than Xception, MidwayXception has more parameters."""
    light, xception, midway = (_params(at64[n]) for n in ("LightXception", "XceptionNet", "MidwayXception"))
    assert light < xception < midway
    assert (light, midway) == (14_390_153, 25_334_129)


@pytest.mark.parametrize("name", VARIANTS)
def test_registered_layers_output_and_saving(at64, name, tmp_path):
    model, arch = at64[name], registry.get(name)
    assert model.name == arch.model_name and models.architecture_of(model) == name
    assert gradcam.last_conv_layer(model) == arch.last_conv == "block14_sepconv2"
    assert set(arch.transfer_layers) <= {layer.name for layer in model.layers}
    assert model.layers[-1].name == "fake_prob" and model.output_shape == (None, 1)
    images = _images(3, 64)
    prob = np.asarray(model.predict_on_batch(images))
    assert prob.shape == (3, 1) and np.all((prob > 0) & (prob < 1))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for saved, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored), keras.ops.convert_to_numpy(saved))
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(images)), prob)


def test_weights_offered():
    assert registry.get("LightXception").weights == ("imagenet",)
    with pytest.raises(ValueError, match=r"MidwayXception takes no weights='imagenet' \(published weights: none\)"):
        models.build("MidwayXception", (32, 32, 3), weights="imagenet")


@pytest.mark.parametrize("name", VARIANTS)
def test_transfer_leaves_only_the_registered_layers_trainable(name):
    model = T.freeze_all_but(models.build(name, (32, 32, 3)), registry.get(name).transfer_layers)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == set(registry.get(name).transfer_layers)


@pytest.mark.parametrize("name", [pytest.param("MidwayXception", marks=pytest.mark.slow), "LightXception"])  # 13 s / 7 s
def test_a_tiny_fit_lowers_the_loss_on_its_batch(name):
    keras.utils.set_random_seed(4)
    model = models.build(name, (32, 32, 3))
    # eager: tracing a 130-layer training step costs more than the three steps themselves
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", run_eagerly=True)
    images, labels = _images(8, 32, seed=5), (np.arange(8) % 2).astype("float32")
    history = model.fit(images, labels, batch_size=8, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_the_workflow_schedules_their_twelve_trainings(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml"),
           "--config", "detectors={architectures: [MesoNet, LightXception, MidwayXception]}"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    trainings = re.findall(r"python -m dfstudy.train --arch (\w+) .*?--trainset (\S+) --strategy (\S+)", run.stdout)
    for name in VARIANTS:
        assert sorted(t[1:] for t in trainings if t[0] == name) == [
            (t, s) for t in ("CELEB", "F2F") for s in ("merge", "original", "transfer")]
    lines = [line for line in run.stdout.splitlines() if "dfstudy.train --arch MidwayXception " in line]
    assert all("--lr 0.001 " in line for line in lines)
