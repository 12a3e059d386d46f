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
from dfstudy.study import PAPER, Study  # noqa: E402

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
    outs, faithfulness = [], []
    for seed, strategy in enumerate(("original", "transfer", "merge")):
        path = tmp_path / "models" / "CELEB" / "Tiny" / f"{strategy}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        small_detector(size, seed=seed).save(path)
        out = tmp_path / "gradcam" / "CELEB" / "Tiny" / strategy / "{variant}" / "FS.npz"
        faithfulness.append(tmp_path / "gradcam" / "CELEB" / "Tiny" / strategy / "faithfulness.csv")
        gradcam.main(["--model", str(path), "--split", str(split), "--n-images", "4", "--seed", "3",
                      "--out", str(out), "--threads", "1", "--batch-size", "3", "--faithfulness",
                      str(faithfulness[-1]), "--faithfulness-images", "3"])
        outs.append({v: str(out).replace("{variant}", v) for v in ("study_code", "heatmap")})
    with np.load(outs[0]["heatmap"]) as z:
        assert z["heatmaps"].dtype == np.uint8 and z["heatmaps"].shape == (4, size, size)
        assert str(z["detector"]) == "CELEB/Tiny/original" and str(z["dataset"]) == "FS"
        assert str(z["layer"]) == "block2_conv" and str(z["variant"]) == "heatmap"
        chosen = list(z["image_ids"])
    assert all(int(i[3:]) % 2 == 1 for i in chosen)
    assert all(list(np.load(o[v])["image_ids"]) == chosen for o in outs for v in o)
    deletion = pd.read_csv(faithfulness[0])
    assert len(deletion) == 6 and set(deletion["variant"]) == {"study_code", "heatmap"}

    csvs = []
    for variant in ("study_code", "heatmap"):
        csvs.append(tmp_path / "ssim" / variant / "CELEB_Tiny_FS.csv")
        similarity.main(["compare", "--group", "CELEB/Tiny", "--dataset", "FS", "--heatmaps", *(o[variant] for o in outs),
                         "--out", str(csvs[-1])])
    per_image = pd.read_csv(csvs[1])
    assert list(per_image.columns[:6]) == ["variant", "trainset", "arch", "dataset", "image_id", "ssim"]
    assert {"ssim_original_transfer", "ssim_original_merge", "ssim_transfer_merge"} <= set(per_image.columns)
    assert len(per_image) == 4 and per_image["ssim"].between(-1, 1).all()
    assert not np.allclose(per_image["ssim"], pd.read_csv(csvs[0])["ssim"])  # the variants differ

    tables = [tmp_path / "rq3_ssim_study_code.csv", tmp_path / "rq3_ssim_heatmap.csv"]
    findings = tmp_path / "findings_rq3.json"
    similarity.main(["summarize", "--inputs", *map(str, csvs), "--variants", "study_code", "heatmap",
                     "--tables", *map(str, tables), "--findings", str(findings)])
    table = tables[1]
    row = pd.read_csv(table).iloc[0]
    assert row["n"] == 4
    assert row[["share_lt07", "share_07_09", "share_ge09"]].sum() == pytest.approx(1.0)
    verdict = json.loads(findings.read_text())
    assert verdict["verdict"] in {"supported", "not supported"} and "Finding 3" in verdict["sentence"]
    assert verdict["primary"] == "study_code" and set(verdict["variants"]) == {"study_code", "heatmap"}
    assert verdict["robust"] == (verdict["variants"]["study_code"]["verdict"]
                                 == verdict["variants"]["heatmap"]["verdict"])

    from dfstudy import faithfulness as faith

    faith.main(["--inputs", *map(str, faithfulness), "--table", str(tmp_path / "faith.csv"), "--findings",
                str(tmp_path / "faith.json"), "--png", str(tmp_path / "faith.png")])
    assert len(pd.read_csv(tmp_path / "faith.csv")) == 6  # 3 detectors x 1 test set x 2 variants
    assert "occluding the top 10 %" in json.loads((tmp_path / "faith.json").read_text())["sentence"]
    outs = [o["heatmap"] for o in outs]

    figures_rq3.main(["fig3", "--table", str(table), "--png", str(tmp_path / "f3.png"),
                      "--pdf", str(tmp_path / "f3.pdf")])
    figures_rq3.main(["fig2", "--heatmaps", *outs, "--splits", str(split), "--png", str(tmp_path / "f2.png")])
    assert all((tmp_path / f).stat().st_size > 0 for f in ("f3.png", "f3.pdf", "f2.png"))


def test_an_extra_unseen_set_joins_the_ssim_summary_and_figure3(tmp_path):
    study = Study(architectures=("MesoNet", "ShallowNet"), unseen=("MY", "FS", "NT", "DF", "DFD"))
    rng = np.random.default_rng(0)
    rows = [dict(variant="heatmap", trainset=t, arch=a, dataset=d, image_id=f"{d}:{i}", ssim=rng.uniform(0, 1))
            for t in ("F2F", "CELEB") for a in ("ShallowNet", "MesoNet")
            for d in ("DFD", "FS", t, "MY", "NT", "DF") for i in range(5)]
    inputs = tmp_path / "ssim.csv"
    pd.DataFrame(rows).to_csv(inputs, index=False)
    table, findings = tmp_path / "rq3_ssim_heatmap.csv", tmp_path / "findings_rq3.json"
    similarity.main(["summarize", "--inputs", str(inputs), "--variants", "heatmap", "--tables", str(table),
                     "--findings", str(findings), "--study", study.to_json()])
    summary = pd.read_csv(table)
    # the study's order: training sets, architectures, then the own test set and the unseen sets, MY first
    assert summary[["trainset", "arch"]].drop_duplicates().apply(tuple, axis=1).tolist() == [
        ("CELEB", "MesoNet"), ("CELEB", "ShallowNet"), ("F2F", "MesoNet"), ("F2F", "ShallowNet")]
    assert summary.dataset[:6].tolist() == ["CELEB", "MY", "FS", "NT", "DF", "DFD"]
    assert (summary.n == 5).all() and json.loads(findings.read_text())["n_cells"] == 24
    # the paper's study knows no MY: it would come last
    assert similarity.summarize(pd.DataFrame(rows), PAPER).dataset[:6].tolist()[-1] == "MY"

    fig = figures_rq3.figure3(summary, study)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 4 and panels[0].get_title() == "(a) MesoNet\nCELEB"
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["CELEB", "MY", "FS", "NT", "DF", "DFD"]
    figures_rq3.main(["fig3", "--table", str(table), "--png", str(tmp_path / "f3.png"), "--study", study.to_json()])
    assert (tmp_path / "f3.png").stat().st_size > 0


def _study_convention_pair(size=48, seed=0):
    """One small detector in two input conventions with the same weights and a P(real) sigmoid.

    ``ours`` takes uint8 images (Rescaling 1/255 inside, as our detectors do); ``theirs`` takes the
    ``uint8 / 255`` float images the study's code fed to its models.
    """

    def build(scale):
        inputs = keras.Input((size, size, 3), name="image")
        x = layers.Rescaling(scale, name="rescale")(inputs)
        for i, filters in enumerate((4, 8), start=1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Flatten(name="features")(x)
        x = layers.Dense(8, activation="relu", name="head_dense")(x)
        return keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="real_prob")(x))

    keras.utils.set_random_seed(seed)
    ours, theirs = build(1 / 255), build(1.0)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _released_code_steps(model, image, layer):
    """The study's src_analysis/*_analysis.py and count_SSIM.py steps for one image, from their text:
    explain() with class_index=0 and no guided grads on the float image, min-max to uint8, JET."""
    from tf_explain.core.grad_cam import GradCAM

    x = image.astype(np.float32) / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explained = GradCAM().explain((x[None], None), model, class_index=0, layer_name=layer,
                                      use_guided_grads=False)
    scaled = cv2.normalize(explained, None, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_8U)
    jet_bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_JET)  # written with imwrite, read back as RGB
    return cv2.cvtColor(jet_bgr, cv2.COLOR_BGR2RGB)


def test_study_code_variant_equals_the_released_code_steps():
    ours, theirs = _study_convention_pair()
    images = random_images(6, 48, seed=4)
    layer = gradcam.last_conv_layer(ours)
    prob_real = ours.predict(images, verbose=0)
    assert ((prob_real > 0.02) & (prob_real < 0.98)).all()
    np.testing.assert_allclose(prob_real, theirs.predict(images.astype(np.float32) / 255, verbose=0), atol=1e-6)

    maps = gradcam.heatmaps(ours, images, layer, variant="study_code", output="real", batch_size=4)
    reference = np.stack([_released_code_steps(theirs, image, layer) for image in images])
    ours_jet = np.stack([gradcam.colorize(m) for m in maps])
    assert np.abs(ours_jet.astype(np.float64) - reference).max() <= 1e-5
    # the stored form (uint8 grey levels) keeps the map exactly
    np.testing.assert_array_equal(gradcam.colorize(gradcam.encode(maps)[0]), reference[0])
    # the overlay matters: the study_code map is not the pure map of the same score
    pure = gradcam.heatmaps(ours, images, layer, variant="heatmap", output="real")
    assert np.abs(maps - pure).mean() > 0.05

    # Our detectors give P(fake) = 1 - P(real): the same network with the last layer negated. Explaining
    # it as output="fake" gives the study's map of P(real) (to float round-off in the sigmoid's gradient).
    fake = keras.models.clone_model(ours)
    fake.set_weights(ours.get_weights()[:-2] + [-w for w in ours.get_weights()[-2:]])
    np.testing.assert_allclose(fake.predict(images, verbose=0), 1 - prob_real, atol=1e-6)
    from_fake = gradcam.heatmaps(fake, images, layer, variant="study_code", output="fake")
    assert np.abs(from_fake - maps).max() <= 1 / 255 + 1e-6 and np.mean(from_fake != maps) < 0.01


def test_guided_variant_is_rectified_cam_times_guided_backprop():
    model = quadrant_model()
    images = random_images(3, SIZE, seed=2)
    maps = gradcam.heatmaps(model, images, variant="guided")
    assert maps.shape == (3, SIZE, SIZE) and maps.min() >= 0 and maps.max() == 1
    reach = SIZE // 2 + 1  # the quadrant plus the 3x3 convolution's one-pixel reach
    outside = maps.copy()
    outside[:, :reach, :reach] = 0
    assert outside.max() == 0  # nothing outside the pixels the decision depends on
    # the guided copy computes the same function
    guided = gradcam.guided_model(model)
    np.testing.assert_allclose(guided.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_deletion_test_separates_a_faithful_map_from_random_occlusion():
    model = quadrant_model()
    images = random_images(16, SIZE, seed=5)
    maps = gradcam.heatmaps(model, images, variant="heatmap")
    result = gradcam.deletion_test(model, images, maps, fraction=0.25, seed=0)
    drop_top = result["p_base"] - result["p_top"]
    drop_random = result["p_base"] - result["p_random"]
    assert drop_top.mean() > 0.01 and drop_top.mean() > 3 * abs(drop_random.mean()), (drop_top.mean(), drop_random.mean())
    assert (drop_top > drop_random).mean() >= 0.9
    # a map that points away from the quadrant explains nothing: no drop at all
    away = np.zeros_like(maps)
    away[:, SIZE // 2 + 2 :] = 1  # rows beyond the quadrant and the convolution's reach
    blind = gradcam.deletion_test(model, images, away, fraction=0.25, seed=0)
    np.testing.assert_allclose(blind["p_top"], blind["p_base"], atol=1e-6)
