"""Grad-CAM heatmaps of a detector (RQ3), in three variants, and a deletion test of their faithfulness.

Every variant explains the last convolutional layer with tf-explain's own Grad-CAM steps
(``GradCAM.get_gradients_and_filters``, ``GradCAM.generate_ponderated_output``), traced once into a
``tf.function`` graph and run on whole batches instead of one ``explain()`` call per image:
``cam = sum_k mean_xy(dy/dA_k) * A_k`` on the layer's output ``A`` (tf-explain applies no ReLU to the sum).
The variants differ in the score ``y`` explained and in the post-processing:

``study_code`` - the released code's computation (``src_analysis/*_analysis.py``, ``count_SSIM.py`` of
    boutiquelee/DeepfakeEmpiricalStudy), step by step:

    1. ``y`` = the single sigmoid output *as its models had it*: they were trained with Keras'
       ``flow_from_directory``, whose alphabetical class order makes fake = 0, real = 1, so the sigmoid
       is P(real), and ``explain(..., class_index=0, use_guided_grads=False)`` explains P(real). Our
       detectors output P(fake) = 1 - P(real); explaining ``1 - output`` is exactly the negated cam
       (d(1-p)/dA = -dp/dA), which is how it is computed here (``output="fake"``). A model whose output
       already is P(real) is explained as is (``output="real"``);
    2. ``explain()``'s return value: tf-explain's ``heatmap_display`` with its defaults: the cam resized to
       the image (OpenCV bilinear), min-max normalised, ``uint8(map * 255)`` coloured with VIRIDIS and
       blended onto the face (``cv2.addWeighted(face, 0.7, heatmap, 1, 0)``), an RGB uint8 image. The
       study fed ``uint8 / 255`` float images, which tf-explain turns back into the same uint8 face;
    3. ``cv2.normalize(..., 0, 255, NORM_MINMAX, CV_8U)`` of that RGB image (one min and max over all
       three channels);
    4. ``cv2.applyColorMap(..., COLORMAP_JET)``, which turns a 3-channel input into grey with
       ``COLOR_BGR2GRAY`` first (the RGB image is read as BGR, as in the study) and then applies the JET
       table. We store that grey level: :func:`colorize` gives the JET image the study wrote to disk;
    5. SSIM of the JET images, ``multichannel`` (``dfstudy.similarity``, space ``"jet"``).

``heatmap`` - a pure-heatmap reading: ``y`` = P(fake), no guided gradients; the cam resized to the image
    (OpenCV bilinear) and min-max normalised to [0, 1], without the face; SSIM on these grey maps.

``guided`` - the paper's text (Section IV-C): class 'fake', the Grad-CAM map rectified (ReLU, as in
    Selvaraju et al.) and "pointwise-multiplied using guided backpropagation": Guided Grad-CAM. The guided
    backpropagation gradient of P(fake) with respect to the input pixels is taken through a copy of the
    model whose ReLUs pass back only positive gradients at positive inputs (Springenberg et al.; other
    activations keep their plain gradients); its largest absolute value over the colour channels times
    the upsampled rectified cam, min-max normalised, is the map; SSIM of its JET rendering (the text's
    "pure heatmaps based on applyColorMap").

One deliberate difference everywhere: a constant cam (``explain()`` divides 0 by 0 there) gives an all-zero map.

:func:`deletion_test` checks whether a map explains the decision (beyond the study): occlude the top-k %
pixels of the map with the image's mean colour, and the same mask shifted (circularly) to a random place,
and record P(fake) before and after. A map that explains nothing lowers P(fake) no more than its shifted copy.

Grad-CAM needs the TensorFlow backend (tf-explain is TensorFlow code); every other stage is backend-neutral.

Command line (one detector, its test splits, one output per split and variant)::

    python -m dfstudy.gradcam --model results/models/CELEB/MesoNet/original.keras \
        --split results/splits/FS/test.npz --out 'results/gradcam/CELEB/MesoNet/original/{variant}/FS.npz' \
        --variant study_code --variant heatmap --n-images 1000 --seed 1234 --threads 2 \
        --faithfulness results/gradcam/CELEB/MesoNet/original/faithfulness.csv --faithfulness-images 50

Output ``.npz`` (``np.savez_compressed``, no pickled objects):

- ``heatmaps``: uint8 (N, H, W), ``floor(map * 255)`` (for ``study_code`` exactly the grey level the JET
  table is applied to; default; ``--dtype float16`` stores the [0, 1] floats instead). Decode with ``/ 255``.
- ``image_ids``: str (N,), sorted; the same ids for every detector given the same split, n and seed.
- ``layer``, ``detector`` (``trainset/arch/strategy``), ``dataset``, ``variant``, ``model`` (path),
  ``seed``: scalars.

Faithfulness CSV: ``detector, dataset, variant, image_id, fraction, p_base, p_top, p_random``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
import weakref
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dfstudy import device
from dfstudy.cli import split_out_pairs
from dfstudy.models import registry

log = logging.getLogger(__name__)

VARIANTS = ("study_code", "heatmap", "guided")
SSIM_SPACE = {"study_code": "jet", "heatmap": "map", "guided": "jet"}  # what dfstudy.similarity compares
OUTPUT_INDEX = 0  # tf-explain indexes predictions[:, class_index]; a detector has one sigmoid unit
OVERLAY_WEIGHT = 0.7  # tf-explain's explain() defaults, which the study kept: VIRIDIS heatmap, face weight 0.7
# tf-explain passes `[model.inputs]`, a list inside a list; Keras 3 accepts it but warns on every call.
_NESTED_INPUTS_WARNING = "The structure of `inputs` doesn't match"
CONV_LAYER_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")


def _require_tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Grad-CAM uses tf-explain and needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()!r}"
        )


def _check_variant(variant, output):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    if output not in ("fake", "real"):
        raise ValueError(f"output must be 'fake' or 'real' (what the model's sigmoid gives), not {output!r}")


def _sign(variant, output):
    """+1 or -1: the factor that turns the cam of the model's output into the cam of the explained score."""
    explained = "real" if variant == "study_code" else "fake"
    return 1.0 if explained == output else -1.0


def _output_rank(layer):
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError, TypeError):
        # Layers called more than once or without a single output have no well-defined `output`.
        return None


def last_conv_layer(model) -> str:
    """Name of the layer Grad-CAM should inspect: the model's last convolution.

    Parameters
    ----------
    model : keras.Model
        A flat functional model.

    Returns
    -------
    str
        The last layer (in ``model.layers`` order) with a 4-D output that is a convolution
        (Conv2D, SeparableConv2D, DepthwiseConv2D, Conv2DTranspose or a subclass); failing that, the last
        layer with a 4-D output (tf-explain's own rule).
    """
    conv, four_d = None, None
    for layer in model.layers:
        if _output_rank(layer) != 4:
            continue
        four_d = layer.name
        if any(cls.__name__ in CONV_LAYER_TYPES for cls in type(layer).__mro__):
            conv = layer.name
    if conv is None and four_d is None:
        raise ValueError(f"model {model.name!r} has no layer with a 4-D output; Grad-CAM cannot be applied")
    return conv or four_d


def _normalise(cam, height, width):
    """The ``heatmap`` variant: the cam resized (OpenCV bilinear) and min-max normalised to [0, 1]."""
    cam = cv2.resize(cam, (width, height))
    lo, hi = np.min(cam), cam.max()
    if not hi > lo:  # constant (or non-finite) map: explain() would divide 0 by 0 here
        return np.zeros((height, width), np.float32)
    return ((cam - lo) / (hi - lo)).astype(np.float32)


def _study_code_map(cam, image):
    """The ``study_code`` variant's steps 2-4 (module docstring) for one cam and its uint8 RGB face."""
    from tf_explain.utils.display import heatmap_display

    height, width = image.shape[:2]
    if not cam.max() > np.min(cam):  # constant cam: heatmap_display would divide 0 by 0
        return np.zeros((height, width), np.float32)
    overlay = heatmap_display(cam, image, cv2.COLORMAP_VIRIDIS, OVERLAY_WEIGHT)  # explain()'s image (RGB)
    overlay = cv2.normalize(overlay, None, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_8U)
    grey = cv2.cvtColor(overlay, cv2.COLOR_BGR2GRAY)  # what applyColorMap does to a 3-channel image first
    return grey.astype(np.float32) / 255


def heatmap_reference(model, image, layer_name=None) -> np.ndarray:
    """One image's ``heatmap``-variant map along ``GradCAM().explain()``'s own code path (slow).

    Parameters
    ----------
    model : keras.Model
        Detector whose one sigmoid output is P(fake).
    image : array (H, W, 3)
        One uint8 image.
    layer_name : str, optional
        Defaults to :func:`last_conv_layer`.

    Returns
    -------
    np.ndarray
        float32 (H, W) in [0, 1]: the map ``explain(..., class_index=0, use_guided_grads=False)`` colours,
        except that a constant map gives zeros.
    """
    from tf_explain.core.grad_cam import GradCAM

    _require_tensorflow_backend()
    layer_name = layer_name or last_conv_layer(model)
    images = np.asarray(image)[None]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NESTED_INPUTS_WARNING)
        outputs, grads = GradCAM.get_gradients_and_filters(
            model, images, layer_name, OUTPUT_INDEX, use_guided_grads=False
        )
    cam = GradCAM.generate_ponderated_output(outputs, grads)[0].numpy()
    return _normalise(cam, images.shape[1], images.shape[2])


_CAM_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {(layer name, guided): traced function}


def _cam_function(model, layer_name):
    """tf-explain's two Grad-CAM steps compiled into one TensorFlow graph (cached per model and layer).

    These are tf-explain's own functions, not a re-implementation: ``get_gradients_and_filters`` builds its
    gradient sub-model once, while tracing, instead of once per call, and ``generate_ponderated_output``
    gets the batch as a list (it iterates over it, which a symbolic tensor does not allow). The graph is
    traced once per batch shape; the cache keeps that cost out of repeated calls.
    """
    per_model = _CAM_FUNCTIONS.setdefault(model, {})
    if (layer_name, False) not in per_model:
        import tensorflow as tf
        from tf_explain.core.grad_cam import GradCAM

        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function
        def cams(images):
            outputs, grads = GradCAM.get_gradients_and_filters(
                model_ref(), images, layer_name, OUTPUT_INDEX, use_guided_grads=False
            )
            return tf.stack(GradCAM.generate_ponderated_output(tf.unstack(outputs), tf.unstack(grads)))

        per_model[(layer_name, False)] = cams
    return per_model[(layer_name, False)]


def _guided_relu():
    import tensorflow as tf

    @tf.custom_gradient
    def guided_relu(x):
        def grad(dy):  # guided backpropagation: only positive gradients, only where the input was positive
            return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)

        return tf.nn.relu(x), grad

    return guided_relu


def guided_model(model):
    """A copy of `model` (same weights) whose ReLUs back-propagate guided gradients; the forward pass is unchanged.

    ReLU activations (an ``activation="relu"`` argument, an ``Activation("relu")`` or a plain ``ReLU``
    layer) are swapped; every other layer is shared with `model`.
    """
    import keras

    guided_relu, swapped = _guided_relu(), []

    def swap(layer):
        if isinstance(layer, keras.layers.ReLU):
            cfg = layer.get_config()
            if cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold"):
                return keras.layers.Activation(guided_relu, name=layer.name)
            return layer
        if getattr(layer, "activation", None) is not None and _is_relu(layer.activation):
            cfg = layer.get_config()
            cfg["activation"] = guided_relu
            new = layer.__class__.from_config(cfg)
            swapped.append((new, layer))
            return new
        return layer

    clone = keras.models.clone_model(model, clone_function=swap, recursive=True)
    for new, old in swapped:
        new.set_weights(old.get_weights())
    return clone


def _is_relu(fn):
    import keras

    try:
        return keras.activations.serialize(fn) == "relu"
    except Exception:  # an unregistered custom activation
        return False


def _guided_function(model, layer_name):
    """Rectified cam and guided-backpropagation input gradient of the model output, one graph per model."""
    per_model = _CAM_FUNCTIONS.setdefault(model, {})
    if (layer_name, True) not in per_model:
        import tensorflow as tf

        cams = _cam_function(model, layer_name)
        guided = guided_model(model)

        @tf.function
        def guided_cams(images, sign):
            x = tf.cast(images, tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = sign * guided(x, training=False)[:, OUTPUT_INDEX]
            saliency = tf.reduce_max(tf.abs(tape.gradient(score, x)), axis=-1)  # (N, H, W)
            return tf.nn.relu(sign * cams(images)), saliency

        per_model[(layer_name, True)] = guided_cams
    return per_model[(layer_name, True)]


def _guided_map(cam, saliency):
    height, width = saliency.shape
    product = cv2.resize(cam, (width, height)) * saliency
    lo, hi = np.min(product), product.max()
    if not hi > lo:
        return np.zeros((height, width), np.float32)
    return ((product - lo) / (hi - lo)).astype(np.float32)


def heatmaps(model, images, layer_name=None, variant="heatmap", output="fake", batch_size=64,
             progress=False) -> np.ndarray:
    """Grad-CAM maps of one variant, many images per gradient computation.

    Parameters
    ----------
    model : keras.Model
        Detector with one sigmoid output; TensorFlow backend.
    images : array (N, H, W, 3)
        uint8 RGB images (the model rescales internally).
    layer_name : str, optional
        Layer to explain; defaults to :func:`last_conv_layer`.
    variant : {"study_code", "heatmap", "guided"}
        See the module docstring.
    output : {"fake", "real"}
        What the model's sigmoid gives: our detectors give P(fake); the study's gave P(real).
    batch_size : int
        Images per forward/backward pass.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    np.ndarray
        float32 (N, H, W) in [0, 1]; for ``heatmap`` equal (to float round-off, < 1e-5) to
        :func:`heatmap_reference` image by image; for ``study_code`` multiples of 1/255 (the grey levels
        of the study's JET images). A constant map is returned as zeros.

    Notes
    -----
    Summing the scores over a batch (what tf-explain differentiates) still gives each image its own
    gradient, because in inference mode no layer mixes images. The last batch is padded to the full batch
    size so that the graph is traced once.
    """
    from tqdm.auto import tqdm

    _require_tensorflow_backend()
    _check_variant(variant, output)
    layer_name = layer_name or last_conv_layer(model)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    n, height, width = images.shape[:3]
    batch_size = max(1, min(batch_size, n))
    sign = _sign(variant, output)
    compute = _guided_function(model, layer_name) if variant == "guided" else _cam_function(model, layer_name)
    out = np.empty((n, height, width), np.float32)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc=f"grad-cam {variant}", unit="batch"):
        batch = images[start : start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - size, *batch.shape[1:]), batch.dtype)])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NESTED_INPUTS_WARNING)
            if variant == "guided":
                cams, saliency = (t.numpy() for t in compute(batch, np.float32(sign)))
            else:
                cams = sign * compute(batch).numpy()  # negation is exact: the cam of 1 - p is -(cam of p)
        for i in range(size):
            if variant == "heatmap":
                out[start + i] = _normalise(cams[i], height, width)
            elif variant == "study_code":
                out[start + i] = _study_code_map(cams[i], images[start + i])
            else:
                out[start + i] = _guided_map(cams[i], saliency[i])
    return out


def deletion_test(model, images, maps, fraction=0.1, seed=0, batch_size=64) -> pd.DataFrame:
    """P(fake) before and after occluding each map's top pixels, and the same mask at a random place.

    Parameters
    ----------
    model : keras.Model
        Detector (uint8 images in, P(fake) out).
    images : array (N, H, W, 3)
        uint8 images.
    maps : array (N, H, W)
        Their heatmaps (any scale; only the order of the values matters).
    fraction : float
        Share of the pixels occluded (the top ``round(fraction * H * W)`` by map value; ties by position).
    seed : int
        Seed of the random shifts.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    DataFrame
        One row per image: ``p_base`` (no occlusion), ``p_top`` (the map's top pixels set to the image's
        mean colour), ``p_random`` (the same mask, rolled by a random vertical and horizontal offset, so of
        the same area and shape). A map that explains the decision gives ``p_base - p_top`` larger than
        ``p_base - p_random``.
    """
    images, maps = np.asarray(images), np.asarray(maps, np.float32)
    if images.shape[:3] != maps.shape:
        raise ValueError(f"images {images.shape} and maps {maps.shape} do not match")
    n, height, width = maps.shape
    k = max(1, int(round(fraction * height * width)))
    rng = np.random.default_rng(seed)
    top, shifted = images.copy(), images.copy()
    for i in range(n):
        mask = np.zeros(height * width, bool)
        mask[np.argsort(-maps[i].ravel(), kind="stable")[:k]] = True
        mask = mask.reshape(height, width)
        moved = np.roll(mask, (rng.integers(height), rng.integers(width)), axis=(0, 1))
        fill = images[i].reshape(-1, images.shape[-1]).mean(axis=0).round().astype(images.dtype)
        top[i][mask], shifted[i][moved] = fill, fill

    def prob(x):
        return np.concatenate([np.asarray(model.predict_on_batch(x[s : s + batch_size])).reshape(-1)
                               for s in range(0, len(x), batch_size)]).astype(np.float64)

    return pd.DataFrame({"fraction": fraction, "p_base": prob(images), "p_top": prob(top),
                         "p_random": prob(shifted)})


def _jet_rgb_table():
    # OpenCV's own JET table, in RGB order; applying it in one call gives exactly
    # cvtColor(applyColorMap(grey, COLORMAP_JET), BGR2RGB), about three times faster.
    ramp = cv2.cvtColor(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


_JET_RGB = _jet_rgb_table()


def colorize(heatmap) -> np.ndarray:
    """JET rendering of a [0, 1] map or its uint8 grey levels, as OpenCV's ``applyColorMap`` colours it.

    For a ``study_code`` map this is the JET image the study's code wrote; for the others, their pure
    (not overlaid) JET rendering.

    Parameters
    ----------
    heatmap : array (H, W)
        float in [0, 1] (or uint8 grey levels as stored by this module).

    Returns
    -------
    np.ndarray
        uint8 (H, W, 3) RGB: ``cv2.applyColorMap`` with ``COLORMAP_JET`` on ``uint8(map * 255)``, converted
        from OpenCV's BGR to RGB.
    """
    heatmap = np.asarray(heatmap)
    grey = heatmap if heatmap.dtype == np.uint8 else (np.nan_to_num(heatmap) * 255).astype("uint8")
    return cv2.applyColorMap(np.ascontiguousarray(grey), _JET_RGB)


def select_fakes(labels, image_ids, n, seed) -> np.ndarray:
    """Indices of n fake images (label 1), chosen from the ids alone so every detector gets the same ones.

    Fakes are ordered by image_id, shuffled with ``np.random.default_rng(seed)``, the first n kept and
    returned in image_id order. A smaller n gives a subset of a larger n's choice.
    """
    labels, image_ids = np.asarray(labels), np.asarray(image_ids)
    fakes = np.flatnonzero(labels == 1)
    fakes = fakes[np.argsort(image_ids[fakes], kind="stable")]
    if len(fakes) < n:
        log.warning("only %d fake images available, %d requested; using all", len(fakes), n)
    chosen = fakes[np.random.default_rng(seed).permutation(len(fakes))[:n]]
    return np.sort(chosen)  # fakes were sorted by id, so index order is id order


def encode(maps, dtype="uint8") -> np.ndarray:
    """Storage form of [0, 1] maps: uint8 ``floor(map * 255)`` (tf-explain's grey level) or float16."""
    if dtype == "uint8":
        return (np.asarray(maps, np.float32) * 255).astype(np.uint8)
    if dtype == "float16":
        return np.asarray(maps).astype(np.float16)
    raise ValueError(f"dtype must be 'uint8' or 'float16', not {dtype!r}")


def _detector_from_model_path(path):
    # results/models/{trainset}/{arch}/{strategy}.keras -> trainset/arch/strategy
    p = Path(path)
    return "/".join([p.parent.parent.name, p.parent.name, p.stem])


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m dfstudy.gradcam", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="detector .keras file")
    p.add_argument("--split", action="append", required=True,
                   help="split .npz (images, labels, image_ids); repeat, paired in order with --out")
    p.add_argument("--out", action="append", required=True,
                   help="output .npz, one per --split; '{variant}' in it is replaced by each variant's name")
    p.add_argument("--variant", action="append", choices=VARIANTS, default=None,
                   help="map variant; repeat for several (default: study_code and heatmap)")
    p.add_argument("--output", choices=("fake", "real"), default="fake",
                   help="what the model's sigmoid gives (our detectors: fake)")
    p.add_argument("--n-images", type=int, default=1000, help="fake images to explain (default 1000)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the image choice")
    p.add_argument("--layer", default=None, help="layer to explain (default: last convolution)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=("uint8", "float16"), default="uint8", help="storage of the maps")
    p.add_argument("--detector", default=None, help="label trainset/arch/strategy (default: from --model)")
    p.add_argument("--faithfulness", default=None, help="deletion-test CSV (optional)")
    p.add_argument("--faithfulness-images", type=int, default=50, help="images per split for the deletion test")
    p.add_argument("--faithfulness-fraction", type=float, default=0.1, help="share of pixels occluded")
    p.add_argument("--threads", type=int, default=1)
    device.add_arguments(p)
    registry.add_arguments(p)
    return p.parse_args(argv)


def _variants_and_pairs(args):
    variants = list(dict.fromkeys(args.variant or ["study_code", "heatmap"]))
    pairs = split_out_pairs(args.split, args.out)
    if len(variants) > 1 and any("{variant}" not in out for _, out in pairs):
        raise SystemExit("with several --variant, every --out must contain '{variant}'")
    return variants, pairs


def run(args, model):
    """Every ``--variant``'s maps of every ``--split`` with the loaded `model`, and the deletion test
    (``main``'s work; ``dfstudy.analyse`` calls it with the model it loaded for all of a detector's analyses)."""
    variants, pairs = _variants_and_pairs(args)
    layer = args.layer or last_conv_layer(model)
    detector = args.detector or _detector_from_model_path(args.model)
    faithfulness = []
    for split_path, out in pairs:
        with np.load(split_path, allow_pickle=False) as split:
            labels, image_ids = split["labels"], split["image_ids"].astype(str)
            chosen = select_fakes(labels, image_ids, args.n_images, args.seed)
            images = split["images"][chosen]
        dataset = Path(split_path).parent.name
        log.info("%s: %d fake images of %s, layer %s", args.model, len(chosen), split_path, layer)
        for variant in variants:
            t0 = time.perf_counter()
            maps = heatmaps(model, images, layer, variant, args.output, batch_size=args.batch_size, progress=True)
            log.info("%s: %d heatmaps in %.1f s", variant, len(maps), time.perf_counter() - t0)
            path = Path(out.replace("{variant}", variant))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                path,
                heatmaps=encode(maps, args.dtype),
                image_ids=image_ids[chosen],
                layer=np.str_(layer),
                detector=np.str_(detector),
                dataset=np.str_(dataset),
                variant=np.str_(variant),
                model=np.str_(args.model),
                seed=np.int64(args.seed),
            )
            if args.faithfulness:
                m = min(args.faithfulness_images, len(maps))  # the first m of the chosen images
                test = deletion_test(model, images[:m], maps[:m], args.faithfulness_fraction, args.seed,
                                     args.batch_size)
                faithfulness.append(test.assign(detector=detector, dataset=dataset, variant=variant,
                                                image_id=image_ids[chosen][:m]))
    if args.faithfulness:
        columns = ["detector", "dataset", "variant", "image_id", "fraction", "p_base", "p_top", "p_random"]
        Path(args.faithfulness).parent.mkdir(parents=True, exist_ok=True)
        pd.concat(faithfulness, ignore_index=True)[columns].to_csv(args.faithfulness, index=False)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from dfstudy.evaluate import load_model
    from dfstudy.train import configure_backend

    _variants_and_pairs(args)  # bad options fail before the model loads
    configure_backend(args.threads, deterministic=False)
    device.announce(args.require_gpu, log)
    run(args, load_model(args.model, args.plugins))  # loaded once for all of the detector's sets


if __name__ == "__main__":
    main()
