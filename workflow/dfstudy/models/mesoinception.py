"""MesoInception: MesoInception-4 (Afchar et al., 2018), Meso-4 with two inception blocks in front."""

import keras
from keras import layers

from dfstudy.models.mesonet import MESO4_BLOCKS, conv_blocks, meso_head

# Branch widths (a, b, c, d) of the two inception blocks: a 1x1 branch, then 1x1 -> 3x3 branches with
# dilation 1, 2 and 3. Each block is followed by BN and a 2x2 max-pool.
INCEPTION_BLOCKS = ((1, 4, 4, 2), (2, 4, 4, 2))
CONV_BLOCKS = MESO4_BLOCKS[2:]  # blocks 3 and 4 are Meso-4's
LAST_CONV = "block4_conv"
CAUSAL_LAYER = "features"  # the 8x8x16 = 1,024 values entering the first dense layer at 256 px
TRANSFER_LAYERS = ("head_dense", "fake_prob")


def _inception(x, widths, prefix):
    """One inception block: concat of a 1x1 branch and three 1x1 -> 3x3 branches (dilation 1, 2, 3)."""
    a, b, c, d = widths
    branches = [layers.Conv2D(a, 1, padding="same", activation="relu", name=f"{prefix}_b1_conv")(x)]
    for branch, (filters, dilation) in enumerate(((b, 1), (c, 2), (d, 3)), start=2):
        y = layers.Conv2D(filters, 1, padding="same", activation="relu", name=f"{prefix}_b{branch}_reduce")(x)
        y = layers.Conv2D(
            filters, 3, padding="same", dilation_rate=dilation, activation="relu", name=f"{prefix}_b{branch}_conv"
        )(y)
        branches.append(y)
    return layers.Concatenate(name=f"{prefix}_concat")(branches)


def mesoinception(input_shape=(256, 256, 3), weights=None):
    """MesoInception-4: two inception blocks, two conv blocks, a 16-unit head; one sigmoid unit, 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3); callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist for this architecture; anything but None is an error.

    Returns
    -------
    keras.Model
        28,615 trainable parameters at 256x256.
    """
    if weights is not None:
        raise ValueError(f"MesoInception has no pretrained weights; got weights={weights!r}, expected None")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, widths in enumerate(INCEPTION_BLOCKS, start=1):
        x = _inception(x, widths, prefix=f"block{i}")
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = conv_blocks(x, CONV_BLOCKS, first=len(INCEPTION_BLOCKS) + 1)
    return keras.Model(inputs, meso_head(x), name="mesoinception")
