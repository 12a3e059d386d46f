"""LayerAggregation: the layer-aggregation detector of Jevnisek & Avidan (2022), sized like the demo's models.

"Aggregating Layers for Deepfake Detection" (arXiv:2210.05478) argues that a backbone with a binary head
on its last features discards what its earlier layers saw, and adds "skip connections from every layer
of the network to the fully-connected classification head", so that features of every receptive field
are used at once. Here every block's feature maps are globally average-pooled, the pooled vectors are
concatenated (`features`) and one linear unit with a sigmoid (`fake_prob`) classifies them.

What follows the paper: a convolutional backbone; a skip connection from every block (each block has one
convolution, so from every convolutional layer) to the head; spatial pooling of each block's maps; one
fully-connected (linear) layer on their concatenation as the classifier.

What differs: the paper fine-tunes an ImageNet-pretrained backbone (EfficientNet-V2-S in its
experiments) and taps it at all of its layers; this one is a four-block, 25k-parameter CNN trained from
scratch like MesoNet (the demo trains on a few hundred images, and no published weights exist for it),
tapped once per block. Global average pooling and the 0.2 dropout before the head are our choices: the
seed text of the paper (its introduction) does not state how each layer's maps are reduced. The output
is P(fake) through a sigmoid like every detector here, where the paper speaks of a linear head.
"""

import keras
from keras import layers

# filters of each block's 3x3 convolution; blocks 1-3 end in a 2x2 max-pool
AGGREGATION_BLOCKS = (8, 16, 32, 64)


def layer_aggregation(input_shape=(256, 256, 3), weights=None):
    """Four conv blocks, each pooled into the head; one sigmoid unit on their concatenation, 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 8; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist for this architecture; anything but None is an error.

    Returns
    -------
    keras.Model
        24,889 trainable parameters at any input size (the head sees 8 + 16 + 32 + 64 = 120 pooled values).
    """
    if weights is not None:
        raise ValueError(f"LayerAggregation has no pretrained weights; got weights={weights!r}, expected None")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    pooled = []
    for i, filters in enumerate(AGGREGATION_BLOCKS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        # the skip connection: this block's maps, pooled, go straight to the head
        pooled.append(layers.GlobalAveragePooling2D(name=f"block{i}_gap")(x))
        if i < len(AGGREGATION_BLOCKS):
            x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = layers.Concatenate(name="features")(pooled)
    x = layers.Dropout(0.2, name="head_drop")(x)
    # float32 output keeps the probability (and the loss) stable under a mixed-precision policy
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return keras.Model(inputs, outputs, name="layeraggregation")
