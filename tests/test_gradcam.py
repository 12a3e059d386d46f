"""Grad-CAM heatmaps, their SSIM and the RQ3 figures, on tiny hand-built models (32-64 px)."""

import json
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("Grad-CAM uses tf-explain, which needs the TensorFlow backend", allow_module_level=True)

from keras import layers  # noqa: E402

from dfstudy import figures_rq3, gradcam, similarity  # noqa: E402

SIZE = 64


def quadrant_model():
    """A detector that only looks at the top-left quadrant of the image.

    conv (positive weights) -> relu -> 4x4 max-pool -> mask keeping the top-left 8x8 of 16x16 cells ->
    1x1 conv (positive, no bias) -> global average -> dense (positive) -> sigmoid.
    """
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(4, name="pool")(x)
    mask = np.zeros((1, SIZE // 4, SIZE // 4, 1), np.float32)
    mask[:, : SIZE // 8, : SIZE // 8] = 1
    x = layers.Lambda(lambda t: t * mask, name="quadrant_mask")(x)
    x = layers.Conv2D(4, 1, use_bias=False, activation="relu", name="last_conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_prob")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    # Small head weights keep the sigmoid out of saturation, where its gradient (and the map) would vanish.
    for name, high in (("conv1", 1.0), ("last_conv", 1.0), ("fake_prob", 0.05)):
        layer = model.get_layer(name)
        layer.set_weights([rng.uniform(high / 10, high, w.shape).astype("float32") for w in layer.get_weights()])
    return model


def small_detector(size=48, seed=0, zero=False):
    """Meso-like: conv-BN-pool blocks, then flatten and dense layers after the last conv."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, filters in enumerate((4, 8), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.Flatten(name="features")(x)
    x = layers.Dense(8, activation="relu", name="head_dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_prob")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):  # non-trivial inference statistics
            gamma, beta, mean, var = layer.get_weights()
            stats = [rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.3, beta.shape),
                     rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2, var.shape)]
            layer.set_weights([s.astype("float32") for s in stats])
        if zero and isinstance(layer, layers.Conv2D):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return model


def random_images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_heatmap_mass_sits_in_the_quadrant_the_decision_depends_on():
    model = quadrant_model()
    images = random_images(4, SIZE)
    assert gradcam.last_conv_layer(model) == "last_conv"
    # The decision really ignores the rest of the image.
    changed = images.copy()
    changed[:, 40:] = 255 - changed[:, 40:]
    changed[:, :, 40:] = 0
    prob = model.predict(images, verbose=0)
    assert ((prob > 0.05) & (prob < 0.95)).all()
    np.testing.assert_allclose(prob, model.predict(changed, verbose=0), atol=1e-6)

    maps = gradcam.heatmaps(model, images)
    assert maps.shape == (4, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    half = SIZE // 2
    share = maps[:, :half, :half].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert (share > 0.8).all(), share


def test_batched_heatmaps_equal_explain_path():
    from tf_explain.core.grad_cam import GradCAM

    model = small_detector()
    images = random_images(10, 48, seed=1)
    layer = gradcam.last_conv_layer(model)
    batched = gradcam.heatmaps(model, images, layer, batch_size=4)  # 3 batches, the last one padded
    reference = np.stack([gradcam.heatmap_reference(model, image, layer) for image in images])
    assert np.abs(batched - reference).max() < 1e-5
    assert reference.min() == 0 and reference.max() == 1  # per-image min-max normalisation

    # heatmap_reference is what explain() colours: a pure JET explain() image equals its colouring.
    for image, ref in zip(images[:2], reference[:2]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jet = GradCAM().explain((image[None], None), model, class_index=0, layer_name=layer,
                                    use_guided_grads=False, colormap=cv2.COLORMAP_JET, image_weight=0.0)
        np.testing.assert_array_equal(jet, gradcam.colorize(ref))


def test_last_conv_layer_skips_dense_flatten_and_pool_layers():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, name="c1")(inputs)
    x = layers.Conv2D(4, 3, name="c2")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu", name="act")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(4, name="d1")(x)
    assert gradcam.last_conv_layer(keras.Model(inputs, layers.Dense(1, name="d2")(x))) == "c2"

    x = layers.Conv2D(4, 3, name="c1")(inputs)
    x = layers.SeparableConv2D(4, 3, name="sep")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    assert gradcam.last_conv_layer(keras.Model(inputs, layers.Dense(1)(x))) == "sep"

    x = layers.MaxPooling2D(name="only_pool")(inputs)  # no convolution: the last 4-D layer
    assert gradcam.last_conv_layer(keras.Model(inputs, layers.Dense(1)(layers.Flatten()(x)))) == "only_pool"

    flat = keras.Input((8,))
    with pytest.raises(ValueError):
        gradcam.last_conv_layer(keras.Model(flat, layers.Dense(1)(flat)))


def test_constant_map_gives_zeros_not_nan():
    model = small_detector(size=32, zero=True)  # conv outputs 0 everywhere -> constant cam
    images = random_images(3, 32)
    maps = gradcam.heatmaps(model, images)
    assert np.isfinite(maps).all() and (maps == 0).all()
    assert (gradcam.heatmap_reference(model, images[0]) == 0).all()
    assert np.isfinite(similarity.pairwise_ssim(maps, maps)).all()


def blobs(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(8, size - 8, (n, 2))
    return np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0) for cy, cx in centres]).astype(np.float32)


def test_ssim_self_shift_groups_and_bins():
    maps = blobs(5)
    np.testing.assert_allclose(similarity.pairwise_ssim(maps, maps), 1.0)
    shifted = np.roll(maps, 6, axis=2)
    assert (similarity.pairwise_ssim(maps, shifted) < 0.99).all()
    jet = similarity.pairwise_ssim(maps, shifted, space="jet")
    assert jet.shape == (5,) and (jet < 1).all()

    group = {"original": maps, "transfer": shifted, "merge": np.roll(maps, 3, axis=1)}
    pairs = similarity.pair_ssims(group)
    assert len(pairs) == 3
    np.testing.assert_allclose(similarity.group_ssim(group), np.mean(list(pairs.values()), axis=0))

    bins = similarity.ssim_bins([0.1, 0.7, 0.89, 0.9, 1.0, 0.69999])
    assert (bins["count_lt07"], bins["count_07_09"], bins["count_ge09"]) == (2, 2, 2)
    assert bins["count_lt07"] + bins["count_07_09"] + bins["count_ge09"] == bins["n"] == 6
    assert sum(bins[f"share_{b}"] for b in similarity.BINS) == pytest.approx(1.0)


def test_fake_selection_depends_only_on_ids_and_seed():
    ids = np.array([f"img{i:03d}" for i in range(40)])
    labels = np.arange(40) % 2
    chosen = ids[gradcam.select_fakes(labels, ids, 10, seed=7)]
    order = np.random.default_rng(0).permutation(40)
    again = ids[order][gradcam.select_fakes(labels[order], ids[order], 10, seed=7)]
    assert sorted(chosen) == sorted(again) and len(set(chosen)) == 10
    assert all(labels[int(i[3:])] == 1 for i in chosen)
    assert set(ids[gradcam.select_fakes(labels, ids, 5, seed=7)]) <= set(chosen)
    assert len(gradcam.select_fakes(labels, ids, 100, seed=7)) == 20  # fewer fakes than asked: all


def test_command_lines_end_to_end(tmp_path):
    size, n = 32, 12
    split = tmp_path / "splits" / "FS" / "test.npz"
    split.parent.mkdir(parents=True)
    ids = np.array([f"fs:{i:02d}" for i in range(n)])
    np.savez(split, images=random_images(n, size), labels=(np.arange(n) % 2).astype(np.uint8),
             image_ids=ids, video_ids=ids)
    outs = []
    for seed, strategy in enumerate(("original", "transfer", "merge")):
        path = tmp_path / "models" / "CELEB" / "Tiny" / f"{strategy}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        small_detector(size, seed=seed).save(path)
        out = tmp_path / "gradcam" / "CELEB" / "Tiny" / strategy / "FS.npz"
        gradcam.main(["--model", str(path), "--split", str(split), "--n-images", "4", "--seed", "3",
                      "--out", str(out), "--threads", "1", "--batch-size", "3"])
        outs.append(str(out))
    with np.load(outs[0]) as z:
        assert z["heatmaps"].dtype == np.uint8 and z["heatmaps"].shape == (4, size, size)
        assert str(z["detector"]) == "CELEB/Tiny/original" and str(z["dataset"]) == "FS"
        assert str(z["layer"]) == "block2_conv"
        chosen = list(z["image_ids"])
    assert all(int(i[3:]) % 2 == 1 for i in chosen)
    assert all(list(np.load(o)["image_ids"]) == chosen for o in outs)

    csv = tmp_path / "ssim" / "CELEB_Tiny_FS.csv"
    similarity.main(["--group", "CELEB/Tiny", "--dataset", "FS", "--heatmaps", *outs, "--out", str(csv)])
    per_image = pd.read_csv(csv)
    assert list(per_image.columns[:5]) == ["trainset", "arch", "dataset", "image_id", "ssim"]
    assert {"ssim_original_transfer", "ssim_original_merge", "ssim_transfer_merge"} <= set(per_image.columns)
    assert len(per_image) == 4 and per_image["ssim"].between(-1, 1).all()

    table, findings = tmp_path / "rq3_ssim.csv", tmp_path / "findings_rq3.json"
    similarity.main(["summarize", "--inputs", str(csv), "--table", str(table), "--findings", str(findings)])
    row = pd.read_csv(table).iloc[0]
    assert row["n"] == 4
    assert row[["share_lt07", "share_07_09", "share_ge09"]].sum() == pytest.approx(1.0)
    verdict = json.loads(findings.read_text())
    assert verdict["verdict"] in {"supported", "not supported"} and "Finding 3" in verdict["sentence"]

    figures_rq3.main(["fig3", "--table", str(table), "--png", str(tmp_path / "f3.png"),
                      "--pdf", str(tmp_path / "f3.pdf")])
    figures_rq3.main(["fig2", "--heatmaps", *outs, "--splits", str(split), "--png", str(tmp_path / "f2.png")])
    assert all((tmp_path / f).stat().st_size > 0 for f in ("f3.png", "f3.pdf", "f2.png"))
