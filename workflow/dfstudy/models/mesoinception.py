"""MesoInception: MesoInception-4 (Afchar et al., 2018), Meso-4 with two inception blocks in front."""

import keras
import numpy as np
from keras import layers, ops

from dfstudy.models.mesonet import MESO4_BLOCKS, conv_blocks, meso_head

# Branch widths (a, b, c, d) of the two inception blocks: a 1x1 branch, then 1x1 -> 3x3 branches with
# dilation 1, 2 and 3. Each block is followed by BN and a 2x2 max-pool.
INCEPTION_BLOCKS = ((1, 4, 4, 2), (2, 4, 4, 2))
CONV_BLOCKS = MESO4_BLOCKS[2:]  # blocks 3 and 4 are Meso-4's


@keras.saving.register_keras_serializable(package="dfstudy")
class ZeroFilledDilatedConv2D(layers.Conv2D):
    """``Conv2D(..., dilation_rate=d)`` computed as an undilated convolution with a zero-filled kernel.

    Why: XLA's backward pass of dilated convolutions is very slow on GPUs (MesoInception trained at
    ~220 images/s on an H100 under JAX, against ~4,600 with this formulation). A 3x3 kernel with
    dilation 2 touches the same pixels as the 5x5 kernel that holds its nine weights at every other
    position and zeros elsewhere, so the output and the gradients are the same mathematics.

    The layer stores exactly the variables of the plain dilated ``Conv2D`` (kernel (3, 3, in, out),
    bias), keeps ``dilation_rate`` in its config and has the same output shape: weights move between the
    two freely. The zero-filled kernel is rebuilt from the stored one in every forward pass, so training
    updates only the nine real taps.
    """

    def convolution_op(self, inputs, kernel):
        return ops.conv(
            inputs,
            zero_filled_kernel(kernel, self.dilation_rate),
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=1,
            data_format=self.data_format,
        )


def zero_filled_kernel(kernel, dilation_rate):
    """The (kh, kw, in, out) `kernel` spread out by `dilation_rate` with zeros in between.

    A product with two constant 0/1 placement matrices: each output tap is one stored weight times 1 plus
    zeros, so the values (and, by the chain rule, the gradients) are exact, not approximations.
    """
    placements = []
    for size, rate in zip(kernel.shape[:2], dilation_rate):
        place = np.zeros((rate * (size - 1) + 1, size), dtype="float32")
        place[np.arange(size) * rate, np.arange(size)] = 1.0
        placements.append(ops.convert_to_tensor(place, dtype=kernel.dtype))
    return ops.einsum("ai,bj,ijco->abco", *placements, kernel)


def _inception(x, widths, prefix, dilated_conv):
    """One inception block: concat of a 1x1 branch and three 1x1 -> 3x3 branches (dilation 1, 2, 3)."""
    a, b, c, d = widths
    branches = [layers.Conv2D(a, 1, padding="same", activation="relu", name=f"{prefix}_b1_conv")(x)]
    for branch, (filters, dilation) in enumerate(((b, 1), (c, 2), (d, 3)), start=2):
        y = layers.Conv2D(filters, 1, padding="same", activation="relu", name=f"{prefix}_b{branch}_reduce")(x)
        conv = layers.Conv2D if dilation == 1 else dilated_conv
        y = conv(
            filters, 3, padding="same", dilation_rate=dilation, activation="relu", name=f"{prefix}_b{branch}_conv"
        )(y)
        branches.append(y)
    return layers.Concatenate(name=f"{prefix}_concat")(branches)


def mesoinception(input_shape=(256, 256, 3), weights=None, dilated_conv=ZeroFilledDilatedConv2D):
    """MesoInception-4: two inception blocks, two conv blocks, a 16-unit head; one sigmoid unit, 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3); callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist for this architecture; anything but None is an error.
    dilated_conv : type
        Layer class of the dilated 3x3 convolutions: `ZeroFilledDilatedConv2D` (default, fast under XLA)
        or ``keras.layers.Conv2D`` (the native dilated convolution); same weights, same outputs.

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
        x = _inception(x, widths, prefix=f"block{i}", dilated_conv=dilated_conv)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = conv_blocks(x, CONV_BLOCKS, first=len(INCEPTION_BLOCKS) + 1)
    return keras.Model(inputs, meso_head(x), name="mesoinception")
