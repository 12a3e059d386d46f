"""PixelAnomaly: anomaly features from a pixel model of pristine faces, after Khodabakhsh & Busch (2020).

"A Generalizable Deepfake Detector based on Neural Conditional Distribution Modelling" (seed 002) trains
an autoregressive pixel model (PixelCNN++) on real faces only, uses it as a "universal background model"
that gives every pixel its negative log-likelihood given the pixels before it in raster order, and
trains a small LeNet-5-style classifier on that likelihood map. Faces the pixel model never saw the
like of (synthesis traces) get low likelihood where the traces are.

Here both steps are one flat functional model, so training, prediction, Grad-CAM and the causal
analysis treat it like any other detector: the image goes through the pixel model (``pixel_*`` layers)
to the per-pixel NLL map (``pixel_nll``), and the classifier (``block*``, ``head_*``, ``fake_prob``)
reads the map. The pixel model is fitted before the classifier, on the training part's real images
only, by :func:`pretrain_pixel_model` (the registry's ``pretrain`` hook, called by ``dfstudy.train``
for the original strategy), and then stays frozen under every strategy (the registry's
``frozen_layers``): it never sees a fake.

What follows the paper: a masked-convolution pixel model trained on pristine faces only, before and
apart from the classifier; a discretized logistic mixture likelihood per channel (PixelCNN++); the
per-pixel log-likelihood map, not the image's total, as the classifier's input; a LeNet-5-style
classifier (two 5x5 convolutions, each with batch normalization before its ReLU and a 2x2 max-pool,
then dense layers) trained with Adam at 0.001; 64 px faces at the demo's size.

What differs (beyond the study, and beyond the paper's scale): the pixel model is a plain PixelCNN of
one 7x7 type-A and four residual 3x3 type-B masked convolutions of 32 channels (42,619 parameters,
where the paper's PixelCNN++ has three blocks of five ResNet layers of 160 filters, 94 million
parameters, with down- and up-sampling), so that it trains in seconds on a CPU; its logistics start
at a scale of 8 grey levels (our choice: from PixelCNN++'s wide start it needs hundreds of steps more); its masks are spatial only, so the three channels of a pixel are
independent given the pixels before it (PixelCNN++ lets G depend on R and B on both, linearly in the
mixture means); it has the original PixelCNN's blind spot above and to the right. The mixture has
three components (PixelCNN++: ten). The map sums the NLL over the three channels, in nats. The
classifier ends in one sigmoid unit (the paper's LeNet: two outputs, 933,442 parameters) and pools
its second block's maps to 16x16 at inputs over 64 px, so the head stays the same size at 256 px.
Why a discretized logistic rather than a 256-way softmax: the softmax needs 768 outputs per pixel
(3 x 256) where the mixture needs 27, which on a CPU is most of the pixel model's cost.
"""

import keras
import numpy as np
from keras import layers, ops

from dfstudy.models import registry

# the pixel model: first a type-A convolution (the pixel itself hidden), then type-B ones (it sees
# the features computed at its own position, which depend on earlier pixels only)
PIXEL_FILTERS = 32
PIXEL_KERNEL_A = 7
PIXEL_B_LAYERS = 4
MIXTURES = 3  # logistic components per channel
INITIAL_LOG_SCALE = np.log(8 / 127.5)  # of every logistic: a scale of 8 grey levels
# the LeNet-5-style classifier: (filters, kernel) of each block, then the dense layers' units
LENET_BLOCKS = ((6, 5), (16, 5))
LENET_DENSE = (120, 84)
HEAD_SIZE = 16  # the second block's maps are pooled to at most this many pixels a side

# the pixel model's layers with weights: the registry's record names them (it imports no Keras), the
# pretraining fits them and training keeps them frozen
PIXEL_LAYERS = registry.get("PixelAnomaly").frozen_layers


@keras.saving.register_keras_serializable(package="dfstudy")
class MaskedConv2D(layers.Conv2D):
    """A 'same'-padded convolution that sees only pixels before the centre in raster order.

    Parameters
    ----------
    mask_type : {"A", "B"}
        A: the centre pixel is hidden too (the first layer: a pixel must not see its own value).
        B: the centre position is seen (later layers: the features there depend on earlier pixels only).
    **kwargs
        As ``keras.layers.Conv2D``; ``padding`` is always "same" and the kernel must be odd.
    """

    def __init__(self, filters, kernel_size, mask_type="B", **kwargs):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        kwargs["padding"] = "same"
        super().__init__(filters, kernel_size, **kwargs)
        self.mask_type = mask_type

    def build(self, input_shape):
        super().build(input_shape)
        rows, cols = self.kernel_size
        if rows % 2 == 0 or cols % 2 == 0:
            raise ValueError(f"{self.name}: a masked convolution needs an odd kernel, got {self.kernel_size}")
        mask = np.ones(self.kernel.shape, dtype="float32")
        # the centre row from the centre (A) or after it (B), and every row below
        mask[rows // 2, cols // 2 + (self.mask_type == "B") :] = 0
        mask[rows // 2 + 1 :] = 0
        self._mask = mask

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.convert_to_tensor(self._mask, dtype=kernel.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return {**config, "mask_type": self.mask_type}


@keras.saving.register_keras_serializable(package="dfstudy")
class DiscretizedLogisticNLL(layers.Layer):
    """Per-pixel negative log-likelihood, summed over channels, of 8-bit values under a logistic mixture.

    Called on ``[image, params]``: the image rescaled to [-1, 1] (B, H, W, C) and the pixel model's
    output (B, H, W, C * 3 * K), per channel K mixture logits, K means and K log-scales. Each 8-bit value
    is the bin of width 2/255 around it; the end bins take the tails (PixelCNN++). Returns (B, H, W, 1)
    in nats. Computed in float32 whatever the dtype policy (probabilities of a bin underflow in float16).
    """

    def __init__(self, mixtures=MIXTURES, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mixtures = mixtures

    def call(self, inputs):
        x, params = (ops.cast(t, "float32") for t in inputs)
        k = self.mixtures
        params = ops.reshape(params, (-1, *x.shape[1:], 3 * k))  # static H, W, C: the model's input size
        logits, means, log_scales = params[..., :k], params[..., k : 2 * k], params[..., 2 * k :]
        log_scales = ops.maximum(log_scales, -7.0)
        centred = ops.expand_dims(x, -1) - means
        inv_scale = ops.exp(-log_scales)
        upper, lower = inv_scale * (centred + 1 / 255), inv_scale * (centred - 1 / 255)
        log_cdf_upper = upper - ops.softplus(upper)  # log sigmoid: the bin at 0 takes the lower tail
        log_survival_lower = -ops.softplus(lower)  # log (1 - sigmoid): the bin at 255 takes the upper tail
        mass = ops.sigmoid(upper) - ops.sigmoid(lower)
        # where the bin's mass underflows, its density at the centre times the bin width
        middle = inv_scale * centred
        log_density = middle - log_scales - 2 * ops.softplus(middle) + np.log(2 / 255)
        log_mass = ops.where(mass > 1e-5, ops.log(ops.maximum(mass, 1e-12)), log_density)
        xk = ops.expand_dims(x, -1)
        log_prob = ops.where(xk < -0.999, log_cdf_upper, ops.where(xk > 0.999, log_survival_lower, log_mass))
        log_prob = ops.logsumexp(log_prob + ops.log_softmax(logits, axis=-1), axis=-1)
        return -ops.sum(log_prob, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shapes):
        return (*input_shapes[0][:-1], 1)

    def get_config(self):
        return {**super().get_config(), "mixtures": self.mixtures}


def pixel_anomaly(input_shape=(64, 64, 3), weights=None):
    """The pixel model, its per-pixel NLL map, and a LeNet-style classifier on the map; 1 = fake.

    Parameters
    ----------
    input_shape : tuple
        (S, S, 3), S >= 8; callers pass RGB values in 0-255 (uint8 is fine), the model rescales.
    weights : None
        No pretrained weights exist; the pixel model is fitted by :func:`pretrain_pixel_model`.

    Returns
    -------
    keras.Model
        Named ``pixelanomaly``; 42,619 parameters in the pixel model (any size) and, at 64 px and up,
        504,505 trainable in the classifier.
    """
    if weights is not None:
        raise ValueError(f"PixelAnomaly has no pretrained weights; got weights={weights!r}, expected None")
    size = input_shape[0]
    inputs = keras.Input(input_shape, name="image")
    scaled = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)  # [-1, 1], the likelihood's scale

    # The pixel model (PixelCNN): every output at a pixel depends on the pixels before it only
    x = MaskedConv2D(PIXEL_FILTERS, PIXEL_KERNEL_A, mask_type="A", activation="relu", name="pixel_conv_a")(scaled)
    for i in range(1, PIXEL_B_LAYERS + 1):  # residual, as PixelCNN++'s layers: the neighbours' values pass on
        h = MaskedConv2D(PIXEL_FILTERS, 3, mask_type="B", activation="relu", name=f"pixel_conv_b{i}")(x)
        x = layers.Add(name=f"pixel_res{i}")([x, h])
    # a 1x1 convolution mixes a position's own features only, so it keeps the ordering
    param_layer = layers.Conv2D(input_shape[-1] * 3 * MIXTURES, 1, name="pixel_params")
    params = param_layer(x)
    nll = DiscretizedLogisticNLL(name="pixel_nll")([scaled, params])
    # start every logistic at a scale of ~8 grey levels, not ~128: from a scale of 1 (on [-1, 1]) Adam
    # needs hundreds of steps just to shrink the scales before the means can be learned
    bias = np.zeros((input_shape[-1], 3, MIXTURES), dtype="float32")
    bias[:, 2] = INITIAL_LOG_SCALE
    param_layer.bias.assign(bias.reshape(-1))

    # The classifier (LeNet-5 style): conv -> batch norm -> ReLU -> 2x2 max-pool, twice
    x = nll
    for i, (filters, kernel) in enumerate(LENET_BLOCKS, start=1):
        x = layers.Conv2D(filters, kernel, padding="same", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_act")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    pooled = -(-size // 2 ** len(LENET_BLOCKS))
    x = layers.AveragePooling2D(max(1, pooled // HEAD_SIZE), name="head_pool")(x)  # identity up to 64 px
    x = layers.Flatten(name="features")(x)
    for i, units in enumerate(LENET_DENSE, start=1):
        x = layers.Dense(units, activation="relu", name=f"head_dense{i}")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_prob")(x)
    return keras.Model(inputs, outputs, name="pixelanomaly")


def nll_map(model, images, batch_size=32):
    """The per-pixel NLL map (N, S, S) of `images` (uint8 RGB) under `model`'s pixel model, in nats."""
    pixel_model = keras.Model(model.inputs, model.get_layer("pixel_nll").output)
    return np.asarray(pixel_model.predict(images, batch_size=batch_size, verbose=0))[..., 0]


def pretrain_pixel_model(model, images, labels, epochs, learning_rate, batch_size, seed):
    """Fit the pixel model of `model` to the real images (``labels == 0``) by maximum likelihood.

    The fakes are dropped before anything else: the pixel model must describe pristine faces only. The
    pixel layers are trainable during the fit and frozen after it. One ``fit`` per epoch over an order
    that depends on (seed, epoch) only, as in ``dfstudy.train``, so the result is a function of the
    arguments (with deterministic kernels).

    Parameters
    ----------
    model : keras.Model
        Built by :func:`pixel_anomaly`; its pixel layers are updated in place.
    images : ndarray, uint8 (N, S, S, 3)
    labels : ndarray (N,)
        1 = fake; only the rows with 0 are used.
    epochs : int
    learning_rate : float
        Adam's.
    batch_size : int
    seed : int

    Returns
    -------
    dict
        ``images`` (the real images fitted), ``nll`` (mean per-pixel NLL after each epoch, nats).
    """
    reals = images[np.asarray(labels).ravel() == 0]
    if not len(reals):
        raise ValueError("no real image (label 0) to fit the pixel model to")
    density = keras.Model(model.inputs, model.get_layer("pixel_nll").output, name="pixel_model")
    for name in PIXEL_LAYERS:
        model.get_layer(name).trainable = True
    keras.utils.set_random_seed(seed)
    # the model's output is the loss itself: the mean NLL per pixel; the zero targets are unused
    density.compile(keras.optimizers.Adam(learning_rate), loss=lambda _, nll: ops.mean(nll))
    targets = np.zeros((len(reals), 1, 1, 1), dtype="float32")  # the rank of the map, a scalar's size
    per_epoch = []
    try:
        for epoch in range(epochs):
            order = np.random.default_rng([seed, epoch]).permutation(len(reals))
            fitted = density.fit(reals[order], targets[order], batch_size=batch_size, shuffle=False, verbose=0)
            per_epoch.append(float(fitted.history["loss"][-1]))
    finally:
        for name in PIXEL_LAYERS:
            model.get_layer(name).trainable = False
    return {"images": len(reals), "nll": per_epoch}
