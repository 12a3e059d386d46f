"""Grad-CAM heatmaps of a detector for the "fake" class (RQ3).

The study computed its heatmaps with tf-explain's ``GradCAM().explain(...)``, one call per image, on the
last convolutional layer, for the "fake" class, without guided gradients, and drew them as pure JET maps.
This module computes the same maps on whole batches with tf-explain's own internals
(``GradCAM.get_gradients_and_filters`` and ``GradCAM.generate_ponderated_output``, traced once into a
``tf.function`` graph instead of rebuilding a gradient model and running eagerly per image), then follows
``explain()``'s post-processing exactly (``tf_explain.utils.display.heatmap_display``):

1. ``cam = sum_k mean_xy(dy/dA_k) * A_k`` on the layer's output ``A`` (tf-explain applies *no* ReLU to the
   weighted sum, unlike the Grad-CAM paper; we keep tf-explain's behaviour because the study used it);
2. ``cv2.resize(cam, (W, H))`` to the input size (OpenCV's default bilinear interpolation);
3. per-image min-max normalisation ``(cam - min) / (max - min)`` to [0, 1];
4. (drawing only) ``uint8(map * 255)`` through ``cv2.applyColorMap(..., COLORMAP_JET)``.

The one deliberate difference: ``explain()`` divides by zero on a constant map (it yields NaN and, after the
uint8 cast, an arbitrary colour); :func:`heatmaps` returns an all-zero map instead, since a constant map
carries no location information.

Grad-CAM needs the TensorFlow backend (tf-explain is TensorFlow code); every other stage is backend-neutral.

Command line (one detector, one test split)::

    python -m dfstudy.gradcam --model results/models/CELEB/MesoNet/original.keras \
        --split results/splits/FS/test.npz --n-images 1000 --seed 1234 \
        --out results/gradcam/CELEB/MesoNet/original/FS.npz --threads 2

Output ``.npz`` (``np.savez_compressed``, no pickled objects):

- ``heatmaps``: uint8 (N, H, W), ``floor(map * 255)``, the exact grey level tf-explain feeds to the colour
  map (default; ``--dtype float16`` stores the [0, 1] floats instead). Decode uint8 with ``/ 255``.
- ``image_ids``: str (N,), sorted; the same ids for every detector given the same split, n and seed.
- ``layer``, ``detector`` (``trainset/arch/strategy``), ``dataset``, ``model`` (path), ``seed``: scalars.
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

from dfstudy import device
from dfstudy.cli import split_out_pairs

log = logging.getLogger(__name__)

FAKE_CLASS_INDEX = 0  # one sigmoid unit = P(fake); tf-explain indexes predictions[:, class_index]
# tf-explain passes `[model.inputs]`, a list inside a list; Keras 3 accepts it but warns on every call.
_NESTED_INPUTS_WARNING = "The structure of `inputs` doesn't match"
CONV_LAYER_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")


def _require_tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Grad-CAM uses tf-explain and needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()!r}"
        )


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
    """explain()'s post-processing (tf_explain.utils.display.heatmap_display), minus the colouring."""
    cam = cv2.resize(cam, (width, height))
    lo, hi = np.min(cam), cam.max()
    if not hi > lo:  # constant (or non-finite) map: explain() would divide 0 by 0 here
        return np.zeros((height, width), np.float32)
    return ((cam - lo) / (hi - lo)).astype(np.float32)


def heatmap_reference(model, image, layer_name=None) -> np.ndarray:
    """One image's heatmap along ``GradCAM().explain()``'s own code path (the study's way; slow).

    Parameters
    ----------
    model : keras.Model
    image : array (H, W, 3)
        One uint8 image.
    layer_name : str, optional
        Defaults to :func:`last_conv_layer`.

    Returns
    -------
    np.ndarray
        float32 (H, W) in [0, 1]: the map ``explain(..., use_guided_grads=False)`` colours, except that a
        constant map gives zeros.
    """
    from tf_explain.core.grad_cam import GradCAM

    _require_tensorflow_backend()
    layer_name = layer_name or last_conv_layer(model)
    images = np.asarray(image)[None]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NESTED_INPUTS_WARNING)
        outputs, grads = GradCAM.get_gradients_and_filters(
            model, images, layer_name, FAKE_CLASS_INDEX, use_guided_grads=False
        )
    cam = GradCAM.generate_ponderated_output(outputs, grads)[0].numpy()
    return _normalise(cam, images.shape[1], images.shape[2])


_CAM_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {layer name: traced function}


def _cam_function(model, layer_name):
    """tf-explain's two Grad-CAM steps compiled into one TensorFlow graph (cached per model and layer).

    These are tf-explain's own functions, not a re-implementation: ``get_gradients_and_filters`` builds its
    gradient sub-model once, while tracing, instead of once per call, and ``generate_ponderated_output``
    gets the batch as a list (it iterates over it, which a symbolic tensor does not allow). The graph is
    traced once per batch shape; the cache keeps that cost out of repeated calls.
    """
    per_model = _CAM_FUNCTIONS.setdefault(model, {})
    if layer_name not in per_model:
        import tensorflow as tf
        from tf_explain.core.grad_cam import GradCAM

        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function
        def cams(images):
            outputs, grads = GradCAM.get_gradients_and_filters(
                model_ref(), images, layer_name, FAKE_CLASS_INDEX, use_guided_grads=False
            )
            return tf.stack(GradCAM.generate_ponderated_output(tf.unstack(outputs), tf.unstack(grads)))

        per_model[layer_name] = cams
    return per_model[layer_name]


def heatmaps(model, images, layer_name=None, batch_size=64, progress=False) -> np.ndarray:
    """Grad-CAM heatmaps for the "fake" class, many images per gradient computation.

    Parameters
    ----------
    model : keras.Model
        Detector with one sigmoid output (P(fake)); TensorFlow backend.
    images : array (N, H, W, 3)
        uint8 RGB images (the model rescales internally).
    layer_name : str, optional
        Layer to explain; defaults to :func:`last_conv_layer`.
    batch_size : int
        Images per forward/backward pass.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    np.ndarray
        float32 (N, H, W) in [0, 1], per-image min-max normalised; equal (to float round-off, < 1e-5) to
        :func:`heatmap_reference` image by image. A constant map is returned as zeros.

    Notes
    -----
    Summing the scores over a batch (what tf-explain differentiates) still gives each image its own
    gradient, because in inference mode no layer mixes images. The last batch is padded to the full batch
    size so that the graph is traced once.
    """
    from tqdm.auto import tqdm

    _require_tensorflow_backend()
    layer_name = layer_name or last_conv_layer(model)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    n, height, width = images.shape[:3]
    batch_size = max(1, min(batch_size, n))
    cams = _cam_function(model, layer_name)
    out = np.empty((n, height, width), np.float32)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="grad-cam", unit="batch"):
        batch = images[start : start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - size, *batch.shape[1:]), batch.dtype)])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NESTED_INPUTS_WARNING)
            raw = cams(batch).numpy()
        for i in range(size):
            out[start + i] = _normalise(raw[i], height, width)
    return out


def _jet_rgb_table():
    # OpenCV's own JET table, in RGB order; applying it in one call gives exactly
    # cvtColor(applyColorMap(grey, COLORMAP_JET), BGR2RGB), about three times faster.
    ramp = cv2.cvtColor(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


_JET_RGB = _jet_rgb_table()


def colorize(heatmap) -> np.ndarray:
    """Pure JET rendering of a [0, 1] heatmap, exactly as tf-explain colours it, not overlaid.

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
    p.add_argument("--out", action="append", required=True, help="output .npz; one per --split")
    p.add_argument("--n-images", type=int, default=1000, help="fake images to explain (default 1000)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the image choice")
    p.add_argument("--layer", default=None, help="layer to explain (default: last convolution)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=("uint8", "float16"), default="uint8", help="storage of the maps")
    p.add_argument("--detector", default=None, help="label trainset/arch/strategy (default: from --model)")
    p.add_argument("--threads", type=int, default=1)
    device.add_arguments(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from dfstudy.evaluate import load_model
    from dfstudy.train import configure_backend

    configure_backend(args.threads, deterministic=False)
    device.announce(args.require_gpu, log)
    pairs = split_out_pairs(args.split, args.out)
    model = load_model(args.model)  # once for all of the detector's sets
    layer = args.layer or last_conv_layer(model)
    for split_path, out in pairs:
        with np.load(split_path, allow_pickle=False) as split:
            labels, image_ids = split["labels"], split["image_ids"].astype(str)
            chosen = select_fakes(labels, image_ids, args.n_images, args.seed)
            images = split["images"][chosen]
        log.info("%s: %d fake images of %s, layer %s", args.model, len(chosen), split_path, layer)
        t0 = time.perf_counter()
        maps = heatmaps(model, images, layer, batch_size=args.batch_size, progress=True)
        log.info("%d heatmaps in %.1f s", len(maps), time.perf_counter() - t0)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            out,
            heatmaps=encode(maps, args.dtype),
            image_ids=image_ids[chosen],
            layer=np.str_(layer),
            detector=np.str_(args.detector or _detector_from_model_path(args.model)),
            dataset=np.str_(Path(split_path).parent.name),
            model=np.str_(args.model),
            seed=np.int64(args.seed),
        )


if __name__ == "__main__":
    main()
