"""ShallowNet: ShallowNet-V3 (Tariq et al., 2018), three shallow conv groups and a 1,024-unit dense layer.

No parameter count is published. This follows the layout of ShallowNetV3 in the study's released training
code: every conv uses ReLU and an L2(1e-4) kernel penalty and is followed by dropout .25; the first conv of
each group is "valid" (5x5 in group 1, 3x3 in groups 2 and 3) and is followed by 1x1 convs; groups 1 and 2
end in a 2x2 max-pool (then dropout .25); group 3 narrows 128 -> 32 channels with its 1x1 conv. Then
flatten, dense 1024 + ReLU + L2 (`fc1`), BatchNormalization, dropout .25 and the sigmoid unit.
At 256 px the flatten is 60x60x32 = 115,200 values, so `fc1` alone holds ~118M of the ~118.2M parameters.
"""

import keras
from keras import layers, regularizers

# filters and kernel of the group's first conv, widths of its 1x1 convs, whether it ends in a max-pool
SHALLOWNET_GROUPS = ((32, 5, (32, 32), True), (64, 3, (64, 64), True), (128, 3, (32,), False))
L2, DROPOUT = 1e-4, 0.25


def _conv(x, filters, kernel, name):
    return layers.Conv2D(
        filters, kernel, padding="valid", activation="relu", kernel_regularizer=regularizers.L2(L2), name=name
    )(x)


def shallownet(input_shape=(256, 256, 3), weights=None):
    """ShallowNet-V3: three conv groups, dense 1024 (`fc1`) + BN; one sigmoid unit, 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 28; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist for this architecture; anything but None is an error.

    Returns
    -------
    keras.Model
    """
    if weights is not None:
        raise ValueError(f"ShallowNet has no pretrained weights; got weights={weights!r}, expected None")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for g, (filters, kernel, pointwise, pool) in enumerate(SHALLOWNET_GROUPS, start=1):
        x = _conv(x, filters, kernel, name=f"group{g}_conv1")
        for j, width in enumerate(pointwise, start=2):
            x = layers.Dropout(DROPOUT, name=f"group{g}_drop{j - 1}")(x)
            x = _conv(x, width, 1, name=f"group{g}_conv{j}")
        if pool:
            x = layers.MaxPooling2D(2, name=f"group{g}_pool")(x)
        x = layers.Dropout(DROPOUT, name=f"group{g}_drop{len(pointwise) + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", kernel_regularizer=regularizers.L2(L2), name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Dropout(DROPOUT, name="fc1_drop")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return keras.Model(inputs, outputs, name="shallownet")
