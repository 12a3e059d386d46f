"""PixelAnomaly (beyond the study, seed 002): the pixel model learns the distribution it is fitted to, sees
only earlier pixels, never sees a fake, survives save/load and stays frozen under every strategy."""

import logging
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from dfstudy import models
from dfstudy import train as T
from dfstudy.deviations import deviations
from dfstudy.models import pixelcnn, registry

ROOT = Path(__file__).resolve().parents[1]
SIZE, SEED = 16, 5
PRETRAIN = {"epochs": 1, "learning_rate": 5e-3, "batch_size": 8}
T.configure_backend(deterministic=True)


def smooth_images(n, seed, size=SIZE):
    """Face-like smooth images: a colour gradient in a random direction plus a bright blob (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = np.empty((n, size, size, 3))
    for i in range(n):
        angle, base = rng.uniform(0, 2 * np.pi), rng.uniform(60, 160, 3)
        ramp = np.cos(angle) * xx + np.sin(angle) * yy
        centre, width = rng.uniform(0.3, 0.7, 2), rng.uniform(0.15, 0.3)
        blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * width**2))
        images[i] = base + 60 * ramp[..., None] * rng.uniform(0.5, 1, 3) + 70 * blob[..., None]
    return np.clip(images, 0, 255).astype(np.uint8)


def noise_images(n, seed, size=SIZE):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def pixel_weights(model):
    return [np.array(w) for name in registry.get("PixelAnomaly").frozen_layers for w in model.get_layer(name).weights]


def build(size=SIZE, seed=SEED):
    keras.utils.set_random_seed(seed)
    return models.build("PixelAnomaly", (size, size, 3))


def test_the_pixel_model_scores_its_own_distribution_above_shuffled_pixels():
    """Fitted to smooth images, held-out smooth images have a lower NLL than the same pixels shuffled."""
    model = build()
    summary = pixelcnn.pretrain_pixel_model(model, smooth_images(64, 0), np.zeros(64), epochs=4,
                                            learning_rate=5e-3, batch_size=4, seed=SEED)
    assert summary["images"] == 64 and summary["nll"][-1] < summary["nll"][0], summary
    held_out = smooth_images(16, 1)
    rng = np.random.default_rng(2)
    shuffled = np.stack([rng.permutation(im.reshape(-1, 3)).reshape(im.shape) for im in held_out])
    smooth, scrambled = pixelcnn.nll_map(model, held_out).mean(), pixelcnn.nll_map(model, shuffled).mean()
    assert smooth < 0.85 * scrambled, (smooth, scrambled)  # 0.74 when written


def test_the_nll_map_at_a_pixel_depends_on_earlier_pixels_only():
    model = build()
    images = noise_images(2, 3)
    row, col = 7, 9
    later = images.copy().reshape(2, -1, 3)
    first_after = row * SIZE + col + 1  # raster order
    later[:, first_after:] = noise_images(2, 4).reshape(2, -1, 3)[:, first_after:]
    before, after = (pixelcnn.nll_map(model, x).reshape(2, -1) for x in (images, later.reshape(images.shape)))
    np.testing.assert_allclose(after[:, :first_after], before[:, :first_after], rtol=1e-6, atol=1e-6)
    assert np.abs(after[:, first_after:] - before[:, first_after:]).max() > 1e-3  # the later pixels did change


def test_pretraining_fits_the_real_images_only():
    """With fakes (label 1) mixed in, the pixel model ends exactly as when fitted to the reals alone."""
    reals, fakes = smooth_images(24, 5), noise_images(24, 6)
    order = np.random.default_rng(0).permutation(48)
    images, labels = np.concatenate([reals, fakes])[order], np.repeat([0, 1], 24)[order]
    start, fitted = pixel_weights(build()), {}
    for case, (x, y) in {"mixed": (images, labels), "reals": (images[labels == 0], np.zeros(24)),
                         "fakes seen": (images, np.zeros(48))}.items():
        model = build()
        pixelcnn.pretrain_pixel_model(model, x, y, seed=SEED, **PRETRAIN)
        fitted[case] = pixel_weights(model)
        assert not model.get_layer("pixel_conv_a").trainable  # frozen once fitted
    assert not any(np.array_equal(a, b) for a, b in zip(start, fitted["reals"]))  # it did train
    for a, b in zip(fitted["mixed"], fitted["reals"]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(fitted["fakes seen"], fitted["reals"]))
    with pytest.raises(ValueError, match="no real image"):
        pixelcnn.pretrain_pixel_model(build(), fakes, np.ones(24), seed=SEED, **PRETRAIN)


def test_the_model_is_flat_names_its_layers_and_survives_save_and_load(tmp_path):
    model = build(64)
    arch = registry.get("PixelAnomaly")
    names = [layer.name for layer in model.layers]
    weighted = [n for n in names if n.startswith("pixel_") and model.get_layer(n).weights]
    assert sorted(weighted) == sorted(arch.frozen_layers)
    assert {arch.last_conv, arch.causal_layer, *arch.transfer_layers} <= set(names)
    count = {part: sum(int(np.prod(w.shape)) for name in names if (name.startswith("pixel_")) == (part == "pixel")
                       for w in model.get_layer(name).trainable_weights) for part in ("pixel", "classifier")}
    assert count == {"pixel": 42_619, "classifier": 504_505}, count
    images = noise_images(3, 7, 64)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert models.architecture_of(loaded) == "PixelAnomaly"
    assert loaded.get_layer("pixel_conv_a").mask_type == "A" and loaded.get_layer("pixel_conv_b1").mask_type == "B"
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(pixelcnn.nll_map(loaded, images), pixelcnn.nll_map(model, images), rtol=1e-6)


class _PixelWeightsPerEpoch(keras.callbacks.Callback):
    """The pixel model's weights at the start of every epoch's fit."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append(pixel_weights(self.model))


def _split(n, seed):
    """Smooth reals and the same images with a noisy square pasted in as fakes."""
    images, labels = smooth_images(n, seed), np.arange(n) % 2
    noise = noise_images(n, seed + 100)
    images[labels == 1, 4:10, 4:10] = noise[labels == 1, 4:10, 4:10]
    return {"images": images, "labels": labels.astype(np.uint8)}


@pytest.mark.slow  # 13 s
def test_original_pretrains_then_neither_it_nor_merge_changes_the_pixel_model(tmp_path):
    train, val = _split(32, 10), _split(16, 11)
    model = build()
    built = pixel_weights(model)
    watch = _PixelWeightsPerEpoch()
    best, _, card = T.train_detector(model, train, val, 2, 1e-2, 8, SEED, tmp_path / "original",
                                     callbacks=[watch], pretrain=PRETRAIN, backup_every=0)
    pretrained = watch.seen[0]
    assert not all(np.array_equal(a, b) for a, b in zip(built, pretrained))  # pretraining ran before epoch 1
    for weights in (*watch.seen, pixel_weights(best)):
        for a, b in zip(weights, pretrained):
            np.testing.assert_array_equal(a, b)
    assert card["pretrain"]["images"] == 16 and card["pretrain"]["epochs"] == PRETRAIN["epochs"]
    assert card["non_trainable_params"] >= 42_619

    merge = build()
    tuned, _, card = T.train_detector(merge, train, val, 1, 1e-2, 8, SEED, tmp_path / "merge",
                                      strategy="merge", init_model=best, backup_every=0)
    for a, b in zip(pixel_weights(tuned), pretrained):
        np.testing.assert_array_equal(a, b)
    kernels = [np.array(m.get_layer("block1_conv").kernel) for m in (tuned, best)]
    assert not np.array_equal(*kernels)  # the classifier did train
    assert card["pretrain"] is None and "pixel_conv_a" not in card["trainable_layers"]
    with pytest.raises(ValueError, match="pass pretrain"):
        T.train_detector(build(), train, val, 1, 1e-2, 8, SEED, tmp_path / "none")


class _Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("killed")


@pytest.mark.slow  # three short trainings
def test_a_killed_run_resumes_without_pretraining_again_to_the_same_weights(tmp_path, caplog):
    train, val = _split(32, 10), _split(16, 11)
    run = dict(pretrain=PRETRAIN, backup_every=0)
    whole, whole_history, _ = T.train_detector(build(), train, val, 3, 1e-2, 8, SEED, tmp_path / "whole", **run)
    with pytest.raises(KeyboardInterrupt):
        T.train_detector(build(), train, val, 3, 1e-2, 8, SEED, tmp_path / "killed", callbacks=[_Kill()], **run)
    with caplog.at_level(logging.INFO, logger="dfstudy.train"):
        resumed, history, card = T.train_detector(build(), train, val, 3, 1e-2, 8, SEED, tmp_path / "killed", **run)
    assert "resuming from epoch 2" in caplog.text and "pretraining" not in caplog.text
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(history[cols], whole_history[cols])
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    assert card["pretrain"]["images"] == 16


def test_the_workflow_pretrains_the_original_detectors_only(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml"), "--config",
           "detectors={architectures: [MesoNet, PixelAnomaly]}"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trainings = [line for line in out.stdout.splitlines() if "python -m dfstudy.train --arch " in line]
    pretrained = {re.search(r"--arch (\S+) --trainset (\S+) --strategy (\S+)", t).groups()
                  for t in trainings if "--pretrain-epochs 20 " in t}
    assert pretrained == {("PixelAnomaly", t, "original") for t in ("CELEB", "F2F")}


def test_a_run_that_trains_it_lists_it_as_a_deviation():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate(config, str(ROOT / "config/schema.yaml"))  # fills the schema's defaults, as the workflow does
    assert "PixelAnomaly (beyond the study)" not in set(deviations(config).aspect)
    for key in ("detectors", "loo"):  # trained as a detector of the study's tables or in the leave-one-out protocol
        run = {**config, key: {**config[key], "architectures": [*config[key]["architectures"], "PixelAnomaly"]}}
        row = deviations(run).set_index("aspect").loc["PixelAnomaly (beyond the study)"]
        assert "20 epochs at 0.001 (batch 8) on the real images" in row["here"], row["here"]


def test_grad_cam_and_the_causal_split_read_the_classifier():
    from dfstudy import causal, gradcam

    model, arch = build(32), registry.get("PixelAnomaly")
    assert gradcam.last_conv_layer(model) == arch.last_conv == "block2_conv"  # not a pixel-model convolution
    images = smooth_images(3, 12, 32)
    maps = gradcam.heatmaps(model, images, arch.last_conv)
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()
    head, tail = causal.split_model(model, arch.causal_layer)
    np.testing.assert_allclose(tail(head(images, training=False), training=False), model(images, training=False),
                               rtol=1e-5, atol=1e-6)
