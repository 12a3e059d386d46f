"""The five architectures: the study's parameter counts, flat graphs, the layer names other stages use."""

import keras
import numpy as np
import pytest

from dfstudy import models

SMALL = ("MesoNet", "MesoInception", "ShallowNet")


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def at256():
    return {name: models.build(name, (256, 256, 3)) for name in models.ARCHITECTURES}


@pytest.mark.parametrize("name, count", [("MesoNet", 27_977), ("MesoInception", 28_615)])
def test_parameter_counts_match_the_study(at256, name, count):
    assert _trainable(at256[name]) == count


@pytest.mark.parametrize("size", [256, 64])
@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_builds_flat_with_a_probability_output(at256, name, size):
    model = at256[name] if size == 256 else models.build(name, (size, size, 3))
    assert model.input_shape == (None, size, size, 3)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].name == "fake_prob"
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    prob = np.asarray(model.predict_on_batch(images))
    assert prob.shape == (2, 1) and np.all((prob >= 0) & (prob <= 1))


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
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
    with pytest.raises(ValueError, match="valid"):
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
