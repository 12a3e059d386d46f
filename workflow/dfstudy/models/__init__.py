"""Detector architectures: one builder per module, all plain flat functional Keras models.

Every model takes RGB images with values in 0-255 (uint8 is fine; the model rescales), ends in one
sigmoid unit named ``fake_prob`` (P(fake), 1 = fake) and has stable layer names. Each module also names
the layers other stages need: ``LAST_CONV`` (Grad-CAM), ``CAUSAL_LAYER`` (causal analysis) and
``TRANSFER_LAYERS`` (the layers that train under the transfer strategy).
"""

from . import efficientnet as _efficientnet
from . import mesoinception as _mesoinception
from . import mesonet as _mesonet
from . import shallownet as _shallownet
from . import xception as _xception

_MODULES = {
    "MesoNet": _mesonet,
    "MesoInception": _mesoinception,
    "ShallowNet": _shallownet,
    "XceptionNet": _xception,
    "EfficientNet": _efficientnet,
}
ARCHITECTURES = {
    "MesoNet": _mesonet.mesonet,
    "MesoInception": _mesoinception.mesoinception,
    "ShallowNet": _shallownet.shallownet,
    "XceptionNet": _xception.xceptionnet,
    "EfficientNet": _efficientnet.efficientnet,
}


def _module(name):
    if name not in _MODULES:
        raise ValueError(f"Unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    return _MODULES[name]


def build(name, input_shape=(256, 256, 3), weights=None):
    """Build architecture `name` (a key of ARCHITECTURES) for `input_shape` images.

    Parameters
    ----------
    name : str
        One of MesoNet, MesoInception, ShallowNet, XceptionNet, EfficientNet.
    input_shape : tuple
        (S, S, 3).
    weights : {None, "imagenet"}
        "imagenet" only for XceptionNet and EfficientNet.

    Returns
    -------
    keras.Model
        Named ``name.lower()``, so `architecture_of` can map a loaded model back to its name.
    """
    _module(name)
    return ARCHITECTURES[name](tuple(input_shape), weights=weights)


def architecture_of(model):
    """Registry name of a model built by `build` (also after saving and loading)."""
    for name in ARCHITECTURES:
        if model.name == name.lower():
            return name
    raise ValueError(f"Model {model.name!r} was not built by dfstudy.models; valid: {', '.join(ARCHITECTURES)}")


def transfer_layers(name):
    """Names of the layers that stay trainable under the transfer strategy."""
    return tuple(_module(name).TRANSFER_LAYERS)


def causal_layer(name):
    """Name of the layer whose units the causal analysis intervenes on (None if not analysed)."""
    return _module(name).CAUSAL_LAYER


def last_conv_layer(name):
    """Name of the last convolutional layer (the Grad-CAM target)."""
    return _module(name).LAST_CONV
