"""Detector architectures: one builder per module, all plain flat functional Keras models.

Every model takes RGB images with values in 0-255 (uint8 is fine; the model rescales), ends in one
sigmoid unit named ``fake_prob`` (P(fake), 1 = fake) and has stable layer names. The registry
(``dfstudy.models.registry``) holds one record per architecture: its builder and the layers other stages
need (Grad-CAM's, the causal analysis', the transfer strategy's). Importing this package imports no
Keras; a builder's module is imported when a model is first built.

Adding an architecture: a module with its builder and one ``register(Architecture(...))`` (in
``registry.py`` for a built-in, in the module itself for a plugin; see ``registry``'s docstring).
"""

from dfstudy.models.registry import Architecture, get, import_builders, load_plugins, names, register

__all__ = [
    "Architecture", "architecture_of", "build", "causal_layer", "get", "import_builders", "last_conv_layer",
    "load_plugins", "names", "register", "transfer_layers",
]


def build(name, input_shape=(256, 256, 3), weights=None):
    """Build registered architecture `name` for `input_shape` images.

    Parameters
    ----------
    name : str
        A registered name (``names()``): MesoNet, MesoInception, ShallowNet, XceptionNet, EfficientNet,
        LayerAggregation, PixelAnomaly, MidwayXception, LightXception, or one a plugin registered.
    input_shape : tuple
        (S, S, 3).
    weights : None or str
        One of the architecture's published weights (``get(name).weights``: "imagenet" for XceptionNet,
        EfficientNet and LightXception).

    Returns
    -------
    keras.Model
        Named ``name.lower()``, so `architecture_of` can map a loaded model back to its name.
    """
    return get(name).build(input_shape, weights=weights)


def architecture_of(model):
    """Registry name of a model built by `build` (also after saving and loading)."""
    for name in names():
        if model.name == get(name).model_name:
            return name
    raise ValueError(f"Model {model.name!r} was not built by dfstudy.models; registered: {', '.join(names())}")


def transfer_layers(name):
    """Names of the layers that stay trainable under the transfer strategy."""
    return get(name).transfer_layers


def causal_layer(name):
    """Name of the layer whose units the causal analysis intervenes on (None if not analysed)."""
    return get(name).causal_layer


def last_conv_layer(name):
    """Name of the last convolutional layer (the Grad-CAM target)."""
    return get(name).last_conv
