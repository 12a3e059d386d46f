"""Metric functions against scikit-learn and hand-computed values; bootstrap behaviour."""

import math
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dfstudy.metrics import (_weighted_auc, bootstrap_ci, equal_error_rate, evaluate_predictions,
                             frame_metrics, is_fake, video_metrics)


def clustered(n_videos=200, frames=10, video_sd=1.0, frame_sd=0.3, effect=0.6, seed=0):
    """Balanced test set whose frames share a per-video offset (the case a frame bootstrap gets wrong)."""
    rng = np.random.default_rng(seed)
    vid = np.repeat(np.arange(n_videos), frames)
    label = vid % 2
    logit = effect * (2 * label - 1) + rng.normal(0, video_sd, n_videos)[vid] + rng.normal(0, frame_sd, vid.size)
    return pd.DataFrame(dict(image_id=[f"i{i}" for i in range(vid.size)],
                             video_id=[f"v{v:03d}" for v in vid], label=label,
                             score=1 / (1 + np.exp(-logit))))


# ----------------------------------------------------------------------------------- frame metrics


def test_hand_case_with_ties():
    # fake/real pairs: (.5,.2)=1 (.5,.5)=1/2 (.8,.2)=1 (.8,.5)=1 -> AUC 3.5/4
    # AP: threshold .8 -> P=1, R=1/2; threshold .5 -> P=2/3, R=1 -> 1/2*1 + 1/2*2/3
    # accuracy at 0.5 with "score > 0.5 is fake": .2 ok, .5(real) ok, .5(fake) wrong, .8 ok
    m = frame_metrics([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.8])
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["auc"] == pytest.approx(0.875)
    assert m["ap"] == pytest.approx(5 / 6)
    assert m["note"] == ""


def test_threshold_is_strict_like_keras():
    assert frame_metrics([1, 0], [0.5, 0.5])["accuracy"] == pytest.approx(50.0)
    assert frame_metrics([1], [0.5])["accuracy"] == 0.0
    assert frame_metrics([1], [0.5000001])["accuracy"] == 100.0


def test_agrees_with_sklearn_random():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500), 2)  # rounding creates many ties
    m = frame_metrics(y, s)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["ap"] == pytest.approx(average_precision_score(y, s))
    assert m["accuracy"] == pytest.approx(100 * np.mean((s > 0.5) == y))
    assert (m["n"], m["n_fake"], m["n_real"]) == (500, int(y.sum()), int(500 - y.sum()))


def test_eer_hand_cases():
    # ROC (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = FNR = .5 at the vertex (.5,.5)
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])[0] == pytest.approx(0.5)
    # ROC (0,0) -> (.5,1) with tied scores: d = fpr - fnr goes -1 -> .5, crossing at t = 2/3 -> 1/3
    assert equal_error_rate([0, 0, 1], [0.2, 0.5, 0.5])[0] == pytest.approx(1 / 3)
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == 0.0
    assert equal_error_rate([0, 0, 1, 1], [0.8, 0.9, 0.1, 0.2])[0] == 1.0
    m = frame_metrics([0, 0, 1], [0.2, 0.5, 0.5])
    assert m["eer"] == pytest.approx(1 / 3)


def test_eer_is_where_fpr_meets_fnr_random():
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(300), np.ones(300)].astype(int)
    s = rng.normal(y * 1.0, 1.0)
    eer, thr = equal_error_rate(y, s)
    fpr = np.mean(s[y == 0] >= thr)
    fnr = np.mean(s[y == 1] < thr)
    assert abs(eer - fpr) < 2 / 300 and abs(eer - fnr) < 2 / 300


def test_constant_score_is_defined_and_flagged():
    m = frame_metrics([0, 1, 0, 1], [0.7, 0.7, 0.7, 0.7])
    assert m["accuracy"] == pytest.approx(50.0)
    assert m["auc"] == pytest.approx(0.5)
    assert m["eer"] == pytest.approx(0.5)
    assert m["ap"] == pytest.approx(0.5)
    assert "constant score" in m["note"]


def test_single_class_gives_nan_with_reason():
    m = frame_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["accuracy"] == pytest.approx(200 / 3)
    assert all(math.isnan(m[k]) for k in ("auc", "ap", "eer"))
    assert "only fake" in m["note"]
    m = frame_metrics([0, 0], [0.3, 0.3])
    assert m["accuracy"] == 100.0 and math.isnan(m["auc"])
    assert "only real" in m["note"] and "constant" in m["note"]


def test_empty_and_nonfinite():
    m = frame_metrics([], [])
    assert m["n"] == 0 and math.isnan(m["accuracy"]) and m["note"]
    m = frame_metrics([0, 1], [np.nan, 0.9])
    assert math.isnan(m["accuracy"]) and "non-finite" in m["note"]


def test_bad_labels_rejected():
    with pytest.raises(ValueError):
        frame_metrics([0, 2], [0.1, 0.9])


# ----------------------------------------------------------------------------------- video metrics


def test_video_metrics_hand_case():
    df = pd.DataFrame(dict(video_id=["a", "a", "b", "b", "c", "c"], label=[1, 1, 0, 0, 1, 1],
                           score=[0.9, 0.3, 0.2, 0.6, 0.4, 0.5]))
    m = video_metrics(df)
    # means: a .6 (fake, right), b .4 (real, right), c .45 (fake, wrong)
    assert m["n_videos"] == 3
    assert m["video_accuracy"] == pytest.approx(200 / 3)
    assert m["video_auc"] == pytest.approx(roc_auc_score([1, 0, 1], [0.6, 0.4, 0.45]))


def test_video_with_two_labels_is_an_error():
    df = pd.DataFrame(dict(video_id=["a", "a"], label=[0, 1], score=[0.1, 0.9]))
    with pytest.raises(ValueError, match="both labels"):
        video_metrics(df)


# ----------------------------------------------------------------------------------- bootstrap


def test_video_bootstrap_wider_than_frame_bootstrap_on_clustered_data():
    df = clustered()
    v = bootstrap_ci(df, "accuracy", 500, seed=1, by="video_id")
    f = bootstrap_ci(df, "accuracy", 500, seed=1, by=None)
    assert v["estimate"] == f["estimate"]
    assert v["low"] <= v["estimate"] <= v["high"]
    # 10 frames per video with a strong shared offset: the design effect is large
    assert (v["high"] - v["low"]) > 1.5 * (f["high"] - f["low"])
    va = bootstrap_ci(df, "auc", 300, seed=1, by="video_id")
    fa = bootstrap_ci(df, "auc", 300, seed=1, by=None)
    assert (va["high"] - va["low"]) > 1.5 * (fa["high"] - fa["low"])


def test_vectorised_paths_equal_the_generic_path():
    df = clustered(n_videos=40, frames=5, seed=2)
    df["score"] = df["score"].round(2)  # ties
    acc = bootstrap_ci(df, "accuracy", 200, seed=7)
    acc_c = bootstrap_ci(df, lambda y, s: 100 * np.mean((s > 0.5) == (y == 1)), 200, seed=7)
    assert (acc["low"], acc["high"]) == pytest.approx((acc_c["low"], acc_c["high"]))
    auc = bootstrap_ci(df, "auc", 200, seed=7)
    auc_c = bootstrap_ci(df, roc_auc_score, 200, seed=7)
    assert (auc["low"], auc["high"]) == pytest.approx((auc_c["low"], auc_c["high"]))
    ap = bootstrap_ci(df, "ap", 50, seed=7)
    ap_c = bootstrap_ci(df, average_precision_score, 50, seed=7)
    assert (ap["low"], ap["high"]) == pytest.approx((ap_c["low"], ap_c["high"]))


def test_weighted_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)
    w = rng.integers(0, 4, size=(5, 60)).astype(float)
    got = _weighted_auc(y, s, w)
    for b in range(5):
        assert got[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]))


def test_bootstrap_is_seeded_and_stratified():
    df = clustered(n_videos=30, frames=4, seed=4)
    a = bootstrap_ci(df, "accuracy", 100, seed=3)
    b = bootstrap_ci(df, "accuracy", 100, seed=3)
    assert a == b
    # stratified: both classes in every replicate, so AUC is always defined
    assert bootstrap_ci(df, "auc", 100, seed=3)["n_valid"] == 100
    va = bootstrap_ci(df, "video_accuracy", 100, seed=3)
    assert va["estimate"] == pytest.approx(video_metrics(df)["video_accuracy"])
    assert va["low"] <= va["estimate"] <= va["high"]


def test_bootstrap_accuracy_is_fast():
    df = clustered(n_videos=200, frames=10)
    t = time.perf_counter()
    bootstrap_ci(df, "accuracy", 1000, seed=0, by="video_id")
    bootstrap_ci(df, "accuracy", 1000, seed=0, by=None)
    assert time.perf_counter() - t < 3.0  # ~0.2 s on one core; generous for shared machines


def test_evaluate_predictions_keys():
    df = clustered(n_videos=20, frames=5)
    m = evaluate_predictions(df, n_boot=100, seed=0)
    for k in ("accuracy", "auc", "ap", "eer", "video_accuracy", "video_auc", "accuracy_ci_low",
              "accuracy_ci_high", "accuracy_ci_half", "accuracy_frame_ci_low", "auc_ci_low"):
        assert k in m
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]
    one = evaluate_predictions(df[df.label == 1], n_boot=50, seed=0)
    assert math.isnan(one["auc"]) and math.isnan(one["auc_ci_low"])


# ----------------------------------------------------------------------------------- evaluate


class _SigmoidOfMean:
    """Stands in for a keras model: one sigmoid output per image, records the batch sizes it saw."""

    def __init__(self):
        self.batches = []

    def predict_on_batch(self, x):
        self.batches.append(len(x))
        return (1 / (1 + np.exp(-(x.reshape(len(x), -1).mean(axis=1) - 127.5) / 10)))[:, None]


def test_predict_split_batches_and_keeps_order():
    from dfstudy.evaluate import predict_split

    rng = np.random.default_rng(0)
    n = 10
    split = dict(images=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), labels=np.arange(n) % 2,
                 image_ids=np.array([f"i{i}" for i in range(n)]),
                 video_ids=np.array([f"v{i // 2}" for i in range(n)]))
    model = _SigmoidOfMean()
    df = predict_split(model, split, batch_size=4)
    assert model.batches == [4, 4, 2]
    assert list(df.columns) == ["image_id", "video_id", "label", "score"]
    assert df.image_id.tolist() == [f"i{i}" for i in range(n)]
    expect = _SigmoidOfMean().predict_on_batch(split["images"]).ravel()
    assert np.allclose(df.score, expect, atol=1e-6)


# ----------------------------------------------------------------------------------- one rule for "fake"


def test_is_fake_is_strict():
    assert not is_fake(0.5) and is_fake(np.nextafter(0.5, 1.0)) and not is_fake(0.25)
    assert is_fake(np.array([0.5, 0.75, 0.0])).tolist() == [False, True, False]


@pytest.mark.parametrize("bias, verdict", [(0.0, "real"), (1e-3, "fake")])
def test_a_score_of_exactly_half_is_real_in_predict_and_in_the_evaluation(tmp_path, bias, verdict):
    """`dfstudy predict` and the evaluation call the same images fake: sigmoid(0) = 0.5 is real in both."""
    import cv2
    import keras

    from dfstudy.evaluate import predict_split
    from dfstudy.predict import predict_paths
    from test_faces import face_frame

    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(bias))(pooled)
    model = keras.Model(inputs, out)  # P(fake) = sigmoid(bias) for every image
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(face_frame(192, 192, s=100), cv2.COLOR_RGB2BGR))

    table = predict_paths(model, [image])
    assert table.loc[0, "faces"] == 1
    assert (table.loc[0, "score"] == 0.5) == (bias == 0.0)
    assert table.loc[0, "verdict"] == verdict

    split = dict(images=np.zeros((2, 64, 64, 3), np.uint8), labels=np.array([0, 1]),
                 image_ids=np.array(["r", "f"]), video_ids=np.array(["r", "f"]))
    pred = predict_split(model, split)
    real_right = verdict == "real"  # the real image is right exactly when the verdict is "real"
    assert frame_metrics(pred["label"][:1], pred["score"][:1])["accuracy"] == 100.0 * real_right
    assert frame_metrics(pred["label"][1:], pred["score"][1:])["accuracy"] == 100.0 * (not real_right)
    assert evaluate_predictions(pred, n_boot=10, seed=0)["video_accuracy"] == 50.0
