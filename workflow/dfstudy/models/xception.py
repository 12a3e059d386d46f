"""XceptionNet: the Keras Xception backbone (Chollet, 2017), global average pooling and one sigmoid unit."""

import re

import keras
from keras import layers



def _snake(class_name):
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def stable_auto_names(model):
    """Rename the layers keras.applications leaves unnamed, so names do not depend on session history.

    Keras names an unnamed layer from a per-session counter (``add_7`` in a fresh session, ``add_19`` after
    another model was built). Renumbering them in graph order gives every build the names a fresh session
    would. Saving and loading keep the new names; weights are stored by position, not by name.
    """
    counts = {}
    for layer in model.layers:
        prefix = _snake(type(layer).__name__)
        if re.fullmatch(rf"{prefix}(_\d+)?", layer.name):
            k = counts.get(prefix, 0)
            counts[prefix] = k + 1
            layer.name = prefix if k == 0 else f"{prefix}_{k}"
    return model


def xceptionnet(input_shape=(256, 256, 3), weights=None):
    """Xception backbone, global average pool, one sigmoid unit (1 = fake), as one flat functional model.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 32; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : {None, "imagenet"}
        Backbone initialisation; "imagenet" downloads Keras' ImageNet weights.

    Returns
    -------
    keras.Model
    """
    inputs = keras.Input(input_shape, name="image")
    # Xception's own preprocessing maps 0-255 to [-1, 1]; doing it here lets ImageNet weights see what
    # they were trained on and costs nothing when training from scratch.
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    # Building the backbone on our tensor and reusing its output puts its layers in the outer model
    # itself (no nested Model), so Grad-CAM and freezing reach them by name.
    backbone = keras.applications.Xception(include_top=False, weights=weights, input_tensor=x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return stable_auto_names(keras.Model(inputs, outputs, name="xceptionnet"))
