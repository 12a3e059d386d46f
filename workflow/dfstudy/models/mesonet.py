"""MesoNet: Meso-4 (Afchar et al., 2018), a four-block mesoscopic CNN with a 16-unit head."""

import keras
from keras import layers

MESO4_BLOCKS = ((8, 3, 2), (8, 5, 2), (16, 5, 2), (16, 5, 4))  # filters, kernel, pool


def conv_blocks(x, blocks, first):
    """Meso-4's conv blocks (conv + ReLU, BN, max-pool), named block{first}.. onwards."""
    for i, (filters, kernel, pool) in enumerate(blocks, start=first):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(pool, padding="same", name=f"block{i}_pool")(x)
    return x


def meso_head(x):
    """The Meso head shared by MesoNet and MesoInception: flatten (`features`), dropout, dense 16 +
    LeakyReLU .1, dropout, one sigmoid unit (`fake_prob`)."""
    x = layers.Flatten(name="features")(x)
    x = layers.Dropout(0.5, name="head_drop1")(x)
    x = layers.Dense(16, name="head_dense")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name="head_act")(x)
    x = layers.Dropout(0.5, name="head_drop2")(x)
    # float32 output keeps the probability (and the loss) stable under a mixed-precision policy
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)


def mesonet(input_shape=(256, 256, 3), weights=None):
    """Meso-4: four conv blocks and a 16-unit head; one sigmoid unit, 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3); callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist for this architecture; anything but None is an error.

    Returns
    -------
    keras.Model
        27,977 trainable parameters at 256x256.
    """
    if weights is not None:
        raise ValueError(f"MesoNet has no pretrained weights; got weights={weights!r}, expected None")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = conv_blocks(x, MESO4_BLOCKS, first=1)
    return keras.Model(inputs, meso_head(x), name="mesonet")
