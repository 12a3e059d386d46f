"""EfficientNet: the Keras EfficientNet-B0 backbone (Tan & Le, 2019), global average pooling, one sigmoid unit."""

import keras
from keras import layers

from .xception import stable_auto_names



def efficientnet(input_shape=(256, 256, 3), weights=None):
    """EfficientNet-B0 backbone, global average pool, one sigmoid unit (1 = fake), as one flat functional model.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 32; callers pass RGB values in 0-255 (uint8 is fine).
    weights : {None, "imagenet"}
        Backbone initialisation; "imagenet" downloads Keras' ImageNet weights.

    Returns
    -------
    keras.Model
    """
    inputs = keras.Input(input_shape, name="image")
    # Keras' EfficientNet starts with its own Rescaling(1/255) and Normalization (ImageNet statistics
    # when weights="imagenet", identity otherwise), so the raw 0-255 input goes straight in: adding a
    # rescale here would scale twice.
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=weights, input_tensor=inputs)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return stable_auto_names(keras.Model(inputs, outputs, name="efficientnet"))
