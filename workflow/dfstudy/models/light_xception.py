"""MidwayXception and LightXception: the two Xception variants of seed paper 004, beyond the study.

Govi, Poppi & Marinelli, "Deep Learning for DeepFake Creation and Detection" (a student project), train
Xception (Chollet, 2017) and two variants of it as deepfake classifiers:

- **MidwayXception** replaces every depthwise separable convolution by a module "midway between
  Xception's depthwise separable module and the simplified Inception module": its spatial convolution is
  a grouped convolution whose number of groups is half the number of input channels (two channels per
  group, where Xception's depthwise convolution has one), so the network has more parameters and no
  longer assumes that cross-channel and spatial correlations fully decouple. Its middle flow also adds a
  1x1 convolution in parallel to each block where Xception adds the identity.
- **LightXception** removes four of the eight blocks of Xception's middle flow.

What follows the paper: the Xception entry, middle and exit flows of Keras' ``Xception`` (the same
layers, widths and layer names ``block{n}_...``), the two changes above, global average pooling and a
0.5 dropout before the classifier (the paper's "Dropout is equal to 0.5").

What differs, or is our reading where the paper is silent:

- MidwayXception's module keeps Xception's order, the 3x3 grouped convolution first (as many output
  channels as inputs, like a depthwise convolution of multiplier 1) and the 1x1 pointwise convolution
  after it, with nothing between them. The grouped convolution is computed as a depthwise one of
  multiplier 2 summed over pairs (`PairGroupedConv2D`: the same function and number of weights, fast on
  CPUs). The pair is named like the separable convolution it replaces: ``block{n}_sepconv{i}_group``
  (3x3, grouped) and ``block{n}_sepconv{i}`` (1x1), so
  ``block14_sepconv2`` is again the last convolution, the Grad-CAM layer. The middle flow's parallel 1x1
  convolution (``block{n}_shortcut``) is followed by BatchNormalization, as are Xception's own 1x1
  shortcuts in its entry and exit flows; the paper does not say.
- LightXception keeps middle blocks 5-8 and drops 9-12 (the paper does not say which four go; they have
  identical shapes); the exit flow keeps its names ``block13_*`` and ``block14_*``.
- The paper classifies two classes with a weighted cross-entropy; here, like every detector of the
  workflow, one sigmoid unit ``fake_prob`` gives P(fake) and the input is RGB 0-255, rescaled to [-1, 1]
  inside the model as Xception's preprocessing does. The paper's input size is not stated; the
  workflow's is used.
- Initialisation. The paper does not say that its variants start from ImageNet weights. LightXception
  accepts ``weights="imagenet"``, beyond the paper: every layer it keeps is a layer of Keras' Xception
  with the same shape, and takes that layer's ImageNet weights (the blocks it drops are not used).
  MidwayXception offers none: its grouped kernels and middle-flow shortcuts have no counterpart in the
  published weights, so only a few of its layers could be filled.
"""

import keras
from keras import layers

# Xception's (Keras) entry flow: output channels of blocks 2-4, each two separable convs, a pool and a
# strided 1x1 shortcut; then the middle flow's width and block count, then the exit flow's widths.
ENTRY_BLOCKS = ((2, 128), (3, 256), (4, 728))
MIDDLE_WIDTH, XCEPTION_MIDDLE_BLOCKS, LIGHT_MIDDLE_BLOCKS = 728, 8, 4
EXIT_WIDTHS = {13: (728, 1024), 14: (1536, 2048)}


@keras.saving.register_keras_serializable(package="dfstudy")
class PairGroupedConv2D(layers.DepthwiseConv2D):
    """A convolution in groups of two channels (``Conv2D(C, groups=C // 2)``), computed as a depthwise
    convolution of multiplier 2 whose outputs are summed over the two inputs of each group.

    Output channel ``2g + j`` is ``conv(x[2g], k[2g, j]) + conv(x[2g + 1], k[2g + 1, j])``, which is what a
    grouped convolution computes, with as many weights. Written this way because TensorFlow and JAX run
    grouped convolutions on a CPU through XLA, which made one epoch of MidwayXception on 300 images of 64 px
    take over 15 minutes; depthwise convolutions have fast CPU kernels.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("depth_multiplier", 2)
        super().__init__(**kwargs)

    def call(self, inputs):
        x = super().call(inputs)  # (N, H, W, 2C): input channel c's two maps at 2c and 2c + 1
        n, h, w, c2 = keras.ops.shape(x)
        pairs = keras.ops.reshape(x, (-1, h, w, c2 // 4, 2, 2))  # (group, input in group, output in group)
        return keras.ops.reshape(keras.ops.sum(pairs, axis=4), (-1, h, w, c2 // 2))

    def compute_output_shape(self, input_shape):
        return tuple(super().compute_output_shape(input_shape)[:-1]) + (input_shape[-1],)


def _separable(x, filters, name, midway):
    """Xception's depthwise separable convolution, or MidwayXception's grouped module, named ``name``."""
    if not midway:
        return layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    # groups = half the input channels: each 3x3 kernel sees two channels where a depthwise one sees one
    x = PairGroupedConv2D(kernel_size=3, padding="same", use_bias=False, name=f"{name}_group")(x)
    return layers.Conv2D(filters, 1, use_bias=False, name=name)(x)


def _shortcut(x, filters, name, strides=2):
    """A 1x1 convolution and BatchNormalization on the residual path (Keras leaves these unnamed)."""
    x = layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def xception_flows(x, middle_blocks=XCEPTION_MIDDLE_BLOCKS, midway=False):
    """Xception's entry, middle and exit flows on ``x`` (already scaled to [-1, 1]), layer by layer.

    Parameters
    ----------
    x : KerasTensor
        (None, S, S, 3), S >= 32.
    middle_blocks : int
        Blocks of the middle flow, named ``block5`` onwards (8 in Xception, 4 in LightXception).
    midway : bool
        MidwayXception's grouped modules and 1x1 middle-flow shortcuts instead of Xception's separable
        convolutions and identity shortcuts.

    Returns
    -------
    KerasTensor
        The exit flow's last activation ``block14_sepconv2_act``, 2,048 channels. With the defaults, the
        layers and their names are those of ``keras.applications.Xception(include_top=False)``, except
        that its unnamed 1x1 shortcuts, their BatchNormalization and the additions are named here
        (``block{n}_shortcut``, ``block{n}_shortcut_bn``, ``block{n}_add``).
    """
    for i, filters in enumerate((32, 64), start=1):
        x = layers.Conv2D(filters, 3, strides=2 if i == 1 else 1, use_bias=False, name=f"block1_conv{i}")(x)
        x = layers.BatchNormalization(name=f"block1_conv{i}_bn")(x)
        x = layers.Activation("relu", name=f"block1_conv{i}_act")(x)

    # Entry flow
    for block, filters in ENTRY_BLOCKS:
        residual = _shortcut(x, filters, f"block{block}_shortcut")
        for i in (1, 2):
            if block > 2 or i == 2:  # block 2 starts on block 1's activation
                x = layers.Activation("relu", name=f"block{block}_sepconv{i}_act")(x)
            x = _separable(x, filters, f"block{block}_sepconv{i}", midway)
            x = layers.BatchNormalization(name=f"block{block}_sepconv{i}_bn")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(x)
        x = layers.Add(name=f"block{block}_add")([x, residual])

    # Middle flow
    for block in range(5, 5 + middle_blocks):
        residual = _shortcut(x, MIDDLE_WIDTH, f"block{block}_shortcut", strides=1) if midway else x
        for i in (1, 2, 3):
            x = layers.Activation("relu", name=f"block{block}_sepconv{i}_act")(x)
            x = _separable(x, MIDDLE_WIDTH, f"block{block}_sepconv{i}", midway)
            x = layers.BatchNormalization(name=f"block{block}_sepconv{i}_bn")(x)
        x = layers.Add(name=f"block{block}_add")([x, residual])

    # Exit flow
    residual = _shortcut(x, EXIT_WIDTHS[13][1], "block13_shortcut")
    for i, filters in enumerate(EXIT_WIDTHS[13], start=1):
        x = layers.Activation("relu", name=f"block13_sepconv{i}_act")(x)
        x = _separable(x, filters, f"block13_sepconv{i}", midway)
        x = layers.BatchNormalization(name=f"block13_sepconv{i}_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="block13_pool")(x)
    x = layers.Add(name="block13_add")([x, residual])
    for i, filters in enumerate(EXIT_WIDTHS[14], start=1):
        x = _separable(x, filters, f"block14_sepconv{i}", midway)
        x = layers.BatchNormalization(name=f"block14_sepconv{i}_bn")(x)
        x = layers.Activation("relu", name=f"block14_sepconv{i}_act")(x)
    return x


def _detector(input_shape, name, middle_blocks, midway):
    inputs = keras.Input(input_shape, name="image")
    # Xception's preprocessing, 0-255 to [-1, 1], inside the model: callers pass raw pixels
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = xception_flows(x, middle_blocks, midway)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.5, name="head_drop")(x)
    # float32 output keeps the probability (and the loss) stable under a mixed-precision policy
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return keras.Model(inputs, outputs, name=name)


def copy_xception_weights(source, target):
    """Give every layer of ``target`` that Keras' Xception also has the weights of ``source``'s layer.

    Parameters
    ----------
    source : keras.Model
        ``keras.applications.Xception(include_top=False, ...)``.
    target : keras.Model
        A model built on `xception_flows` (without ``midway``).

    Returns
    -------
    list of str
        The names of the target's layers that took weights. Layers are matched by name; Keras' four
        unnamed 1x1 shortcuts (and their BatchNormalization), in graph order, are blocks 2, 3, 4 and 13's.
    """
    names = {layer.name: layer for layer in source.layers}
    unnamed = [layer for layer in source.layers if layer.weights and not layer.name.startswith("block")]
    shortcuts = [f"block{block}{suffix}" for block in (2, 3, 4, 13) for suffix in ("_shortcut", "_shortcut_bn")]
    if len(unnamed) != len(shortcuts):
        raise ValueError(f"expected Keras' Xception with 8 unnamed shortcut layers, found {len(unnamed)}")
    names.update(zip(shortcuts, unnamed))
    copied = []
    for layer in target.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(names[layer.name].get_weights())
            copied.append(layer.name)
    return copied


def midway_xception(input_shape=(256, 256, 3), weights=None):
    """MidwayXception: Xception with grouped (two channels a group) spatial convolutions and 1x1
    middle-flow shortcuts; global average pool, 0.5 dropout, one sigmoid unit (1 = fake).

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 32; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No published weights fit this architecture; anything but None is an error.

    Returns
    -------
    keras.Model
        Named ``midwayxception``, flat, about 4.5 million parameters more than Xception's backbone.
    """
    if weights is not None:
        raise ValueError(f"MidwayXception has no pretrained weights; got weights={weights!r}, expected None")
    return _detector(input_shape, "midwayxception", XCEPTION_MIDDLE_BLOCKS, midway=True)


def light_xception(input_shape=(256, 256, 3), weights=None):
    """LightXception: Xception with four of its eight middle-flow blocks (5-8 kept); global average pool,
    0.5 dropout, one sigmoid unit (1 = fake).

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 32; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : {None, "imagenet"}
        "imagenet" (beyond the paper): every kept layer takes Keras' ImageNet Xception weights (a
        download); the head starts at random.

    Returns
    -------
    keras.Model
        Named ``lightxception``, flat, about 6.5 million parameters fewer than Xception's backbone.
    """
    if weights not in (None, "imagenet"):
        raise ValueError(f"LightXception takes weights None or 'imagenet', got {weights!r}")
    model = _detector(input_shape, "lightxception", LIGHT_MIDDLE_BLOCKS, midway=False)
    if weights == "imagenet":
        copy_xception_weights(keras.applications.Xception(include_top=False, weights="imagenet"), model)
    return model
