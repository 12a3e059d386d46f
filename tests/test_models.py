"""The built-in architectures: the study's parameter counts, flat graphs, the layer names other stages use."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from dfstudy import models

SMALL = ("MesoNet", "MesoInception", "ShallowNet")
BUILT_IN = models.names()  # the study's five, LayerAggregation, PixelAnomaly and seed 004's two (plugins a test registers come later)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def at256():
    return {name: models.build(name, (256, 256, 3)) for name in BUILT_IN}


@pytest.mark.parametrize("name, count", [("MesoNet", 27_977), ("MesoInception", 28_615)])
def test_parameter_counts_match_the_study(at256, name, count):
    assert _trainable(at256[name]) == count


@pytest.mark.parametrize("size", [256, 64])
@pytest.mark.parametrize("name", list(BUILT_IN))
def test_builds_flat_with_a_probability_output(at256, name, size):
    model = at256[name] if size == 256 else models.build(name, (size, size, 3))
    assert model.input_shape == (None, size, size, 3)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].name == "fake_prob"
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    prob = np.asarray(model.predict_on_batch(images))
    assert prob.shape == (2, 1) and np.all((prob >= 0) & (prob <= 1))


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_named_layers_exist_and_input_is_rescaled_once(at256, name):
    model = at256[name]
    names = {layer.name for layer in model.layers}
    assert set(models.transfer_layers(name)) <= names
    assert models.last_conv_layer(name) in names
    assert len({layer.name for layer in model.layers}) == len(model.layers)
    # callers pass 0-255; exactly one Rescaling maps it (EfficientNet's is the backbone's own)
    assert sum(isinstance(layer, keras.layers.Rescaling) for layer in model.layers) == 1
    assert models.architecture_of(model) == name


@pytest.mark.parametrize("name", SMALL)
def test_causal_layer_has_1024_units_and_a_chain_to_the_output(at256, name):
    model = at256[name]
    layer = model.get_layer(models.causal_layer(name))
    assert layer.output.shape == (None, 1024)
    # the analysis replaces this layer's output and re-runs the rest: what follows must be a chain
    after = model.layers[model.layers.index(layer) + 1 :]
    previous = layer
    for nxt in after:
        assert nxt.input is previous.output, f"{nxt.name} does not take {previous.name}'s output"
        previous = nxt


def test_shallownet_reading():
    """ShallowNet-V3 as in the study's code: 60x60x32 flatten at 256 px into a 1,024-unit ReLU dense."""
    model = models.build("ShallowNet", (64, 64, 3))
    assert model.get_layer("flatten").output.shape == (None, 12 * 12 * 32)
    assert model.get_layer("fc1").activation.__name__ == "relu"
    assert isinstance(model.get_layer("fc1_bn"), keras.layers.BatchNormalization)


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(ValueError, match="MesoNet.*EfficientNet"):
        models.build("ResNet", (64, 64, 3))
    with pytest.raises(ValueError, match="registered: MesoNet, .*LayerAggregation"):
        models.transfer_layers("ResNet")


def test_small_architectures_refuse_pretrained_weights():
    with pytest.raises(ValueError):
        models.build("MesoNet", (64, 64, 3), weights="imagenet")


def test_backbone_layer_names_do_not_depend_on_session_history():
    first = [layer.name for layer in models.build("XceptionNet", (64, 64, 3)).layers]
    keras.layers.Add()  # bumps Keras' per-session name counters
    models.build("EfficientNet", (64, 64, 3))
    assert [layer.name for layer in models.build("XceptionNet", (64, 64, 3)).layers] == first


@pytest.mark.parametrize("name", ["MesoInception", "EfficientNet"])
def test_save_load_keeps_names_and_outputs(tmp_path, name):
    model = models.build(name, (64, 64, 3))
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert models.architecture_of(loaded) == name
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), rtol=1e-5, atol=1e-6)


# MesoInception's dilated convolutions: zero-filled kernels, the same mathematics as native dilation ------


def _outputs_and_gradients(model, images, seed=0):
    """Outputs, and gradients of a random weighting of them w.r.t. every trainable weight and the input,
    with the running backend's own autodiff (inference mode: no dropout draw differs between models)."""
    x = keras.ops.convert_to_tensor(np.asarray(images, dtype="float32"))
    r = keras.ops.convert_to_tensor(np.random.default_rng(seed).normal(size=(len(images), 1)).astype("float32"))
    if keras.config.backend() == "jax":
        import jax

        def loss(trainable, x):
            y, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x)
            return keras.ops.sum(y * r), y

        (_, y), (g_w, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            [v.value for v in model.trainable_variables], x
        )
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=False)
            total = keras.ops.sum(y * r)
        *g_w, g_x = tape.gradient(total, [*model.trainable_variables, x])
    return [np.asarray(t) for t in (y, g_x, *g_w)]


def zero_filled_vs_native(size=32, seed=3):
    """Largest |difference| / scale between the zero-filled and the native dilated MesoInception, on the
    same weights: outputs, input gradients and every weight gradient (one entry each)."""
    from dfstudy.models.mesoinception import mesoinception

    keras.utils.set_random_seed(seed)
    native = mesoinception((size, size, 3), dilated_conv=keras.layers.Conv2D)
    filled = mesoinception((size, size, 3))
    filled.set_weights(native.get_weights())
    images = np.random.default_rng(seed).integers(0, 256, (4, size, size, 3))
    ours, theirs = _outputs_and_gradients(filled, images), _outputs_and_gradients(native, images)
    return [float(np.abs(a - b).max() / max(1.0, np.abs(b).max())) for a, b in zip(ours, theirs)]


def test_zero_filled_dilation_keeps_variables_names_and_count(at256):
    from dfstudy.models.mesoinception import ZeroFilledDilatedConv2D, mesoinception

    native = mesoinception((256, 256, 3), dilated_conv=keras.layers.Conv2D)
    filled = at256["MesoInception"]
    assert [layer.name for layer in filled.layers] == [layer.name for layer in native.layers]
    assert [(w.path, w.shape) for w in filled.weights] == [(w.path, w.shape) for w in native.weights]
    dilated = [layer for layer in filled.layers if isinstance(layer, ZeroFilledDilatedConv2D)]
    assert sorted(layer.dilation_rate for layer in dilated) == [(2, 2), (2, 2), (3, 3), (3, 3)]
    assert all(layer.kernel.shape[:2] == (3, 3) for layer in dilated)
    assert _trainable(filled) == _trainable(native) == 28_615


def test_zero_filled_kernel_places_each_weight_once():
    from dfstudy.models.mesoinception import zero_filled_kernel

    kernel = np.arange(1, 3 * 3 * 2 * 1 + 1, dtype="float32").reshape(3, 3, 2, 1)
    spread = np.asarray(zero_filled_kernel(keras.ops.convert_to_tensor(kernel), (3, 2)))
    assert spread.shape == (7, 5, 2, 1)
    np.testing.assert_array_equal(spread[::3, ::2], kernel)
    assert np.count_nonzero(spread) == kernel.size


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)])  # jax: about 16 s
def test_zero_filled_dilation_equals_native_outputs_and_gradients(backend):
    if backend == keras.config.backend():
        differences = zero_filled_vs_native()
    else:  # the other backend needs its own process: Keras fixes its backend at import
        pytest.importorskip(backend)
        done = subprocess.run([sys.executable, __file__], env={**os.environ, "KERAS_BACKEND": backend},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        differences = json.loads(done.stdout.strip().splitlines()[-1])
    trainable = models.build("MesoInception", (32, 32, 3)).trainable_weights
    assert len(differences) == 2 + len(trainable)  # output, input gradient, one per trainable weight
    assert max(differences) < 1e-5, differences


def test_weights_move_between_zero_filled_and_native(tmp_path):
    """A detector saved with native dilation (e.g. trained before this layer existed) loads as it was
    saved, and its weight list drops into the zero-filled model unchanged, and back."""
    from dfstudy.models.mesoinception import mesoinception

    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    keras.utils.set_random_seed(8)
    mesoinception((64, 64, 3), dilated_conv=keras.layers.Conv2D).save(tmp_path / "native.keras")
    native = keras.saving.load_model(tmp_path / "native.keras", compile=False)
    filled = models.build("MesoInception", (64, 64, 3))
    filled.set_weights(native.get_weights())
    np.testing.assert_allclose(filled.predict_on_batch(images), native.predict_on_batch(images), atol=1e-6)
    keras.utils.set_random_seed(9)
    other = models.build("MesoInception", (64, 64, 3))
    native.set_weights(other.get_weights())
    np.testing.assert_allclose(native.predict_on_batch(images), other.predict_on_batch(images), atol=1e-6)


if __name__ == "__main__":  # the other-backend half of the equality test runs this file in a subprocess
    print(json.dumps(zero_filled_vs_native()))
