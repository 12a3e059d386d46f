"""Training: learns, strategies touch exactly the layers they should, resume is exact, same seed same run."""

import hashlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from dfstudy import batches, models
from dfstudy import train as T

SIZE, SEED = 32, 7
T.configure_backend(deterministic=True)


def synthetic(n, seed):
    """Noisy 32x32 images; the fakes (label 1, every other image) carry a bright 8x8 square somewhere."""
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(110, 30, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    labels = (np.arange(n) % 2).astype(np.uint8)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, SIZE - 8, 2)
        images[i, top : top + 8, left : left + 8] = 250
    return {"images": images, "labels": labels}


@pytest.fixture(scope="module")
def data():
    return synthetic(768, 0), synthetic(128, 1), synthetic(128, 2)


@pytest.fixture(scope="module")
def small(data):
    """Fewer images, for the tests that train three times."""
    return {k: v[:192] for k, v in data[0].items()}, {k: v[:64] for k, v in data[1].items()}


def run(data, workdir, epochs=2, seed=SEED, batch_size=32, **kwargs):
    kwargs.setdefault("backup_every", 0)  # a backup after every epoch, so a kill leaves one to resume
    keras.utils.set_random_seed(seed)
    model = models.build("MesoNet", (SIZE, SIZE, 3))
    best, history, card = T.train_detector(
        model, data[0], data[1], epochs, 1e-3, batch_size, seed, workdir, **kwargs
    )
    return model, best, history, card


@pytest.fixture(scope="module")
def original(data, tmp_path_factory):
    """A MesoNet trained from scratch, saved as the init model of transfer and merge."""
    path = tmp_path_factory.mktemp("original")
    # small batches: BatchNormalization's moving variance starts at 1 and needs a few hundred steps to
    # reach these images' scale, before which inference-mode predictions are near chance
    _, best, history, card = run(data, path / "work", epochs=7, batch_size=8, trainset="SYNTH")
    best.save(path / "original.keras")
    return path / "original.keras", best, history, card


def test_original_learns_and_reports(data, original):
    _, best, history, card = original
    test = data[2]
    accuracy = np.mean((best.predict(test["images"], verbose=0).ravel() >= 0.5) == test["labels"])
    assert accuracy >= 0.8, f"held-out accuracy {accuracy:.2f}"
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    # every epoch up to the first perfect validation accuracy, after which none could be kept
    stopped = card["stopped_early"] is not None
    assert history["epoch"].tolist() == list(range(1, len(history) + 1)) and (len(history) == 7 or stopped)
    assert stopped == (history["val_accuracy"].iloc[-1] == 1.0 and len(history) < 7)
    assert card["best_epoch"] == history.loc[history["val_accuracy"].idxmax(), "epoch"]
    assert card["val_accuracy"] == history["val_accuracy"].max()
    assert card["trainable_params"] == 11_849 and card["image_size"] == SIZE
    assert card["train_sha256"] == hashlib.sha256(data[0]["images"].tobytes()).hexdigest()[:16]
    assert {"architecture", "trainset", "strategy", "backend", "keras_version", "wall_time_s", "seed"} <= set(card)
    json.dumps(card)


def _weights_by_layer(model):
    return {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("strategy", ["transfer", "merge"])
def test_strategies_train_the_right_layers_and_leave_the_init_file_alone(data, original, tmp_path, strategy):
    init_path = original[0]
    before = _sha(init_path)
    init = keras.saving.load_model(init_path, compile=False)
    start = _weights_by_layer(init)
    model, _, _, card = run(data, tmp_path, epochs=1, strategy=strategy, init_model=init)
    after = _weights_by_layer(model)
    trainable = set(models.transfer_layers("MesoNet")) if strategy == "transfer" else set(after)
    for name, weights in after.items():
        changed = [not np.array_equal(w, w0) for w, w0 in zip(weights, start[name])]
        if name in trainable:
            assert all(changed), f"{strategy}: {name} did not train"
        else:
            assert not any(changed), f"{strategy}: frozen {name} changed"
    assert _sha(init_path) == before
    assert all(np.array_equal(w, w0) for name in start for w, w0 in zip(_weights_by_layer(init)[name], start[name]))
    if strategy == "transfer":
        assert card["trainable_params"] == 16 * 16 + 16 + 16 + 1  # head_dense + fake_prob at 32 px


class _Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("killed")


def test_transfer_trains_its_head_on_the_frozen_trunk_computed_once(small, original, tmp_path, caplog):
    """The trunk before MesoNet's first dropout is frozen under transfer: computed once, it trains the head to
    the weights and history of the whole model run every epoch, and a killed run resumes to them too."""
    init = keras.saving.load_model(original[0], compile=False)
    # shuffled validation labels: no epoch reaches accuracy 1.0, which would end training after it
    val = {**small[1], "labels": np.random.default_rng(0).permutation(small[1]["labels"])}
    data = (small[0], val)
    with caplog.at_level(logging.INFO, logger="dfstudy.train"):
        cached, _, cached_history, card = run(data, tmp_path / "cached", strategy="transfer", init_model=init)
        with pytest.raises(KeyboardInterrupt):
            run(data, tmp_path / "killed", strategy="transfer", init_model=init, callbacks=[_Kill()])
        resumed, _, resumed_history, _ = run(data, tmp_path / "killed", strategy="transfer", init_model=init)
    assert "frozen trunk computed once" in caplog.text and "resuming from epoch 2" in caplog.text
    assert card["head_trained_on_trunk_outputs_from"] == "head_drop1" and len(cached_history) == 2
    whole, _, whole_history, whole_card = run(data, tmp_path / "whole", strategy="transfer", init_model=init,
                                              cache_trunk=False)
    assert "head_trained_on_trunk_outputs_from" not in whole_card
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(cached_history[cols], whole_history[cols], rtol=1e-6)
    pd.testing.assert_frame_equal(resumed_history[cols], cached_history[cols], check_exact=True)
    for a, b, c in zip(cached.weights, whole.weights, resumed.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(np.array(c), np.array(a))


def test_no_trunk_is_split_off_where_the_first_layer_trains_or_a_connection_crosses():
    original = models.build("MesoNet", (SIZE, SIZE, 3))
    assert T.frozen_trunk(original) is None  # every layer trains
    def frozen(arch):
        return T.freeze_all_but(models.build(arch, (SIZE, SIZE, 3)), models.transfer_layers(arch))

    assert T.frozen_trunk(frozen("EfficientNet")) is None  # stochastic depth from block 2 on, in residual blocks
    xception = frozen("XceptionNet")
    trunk, head = T.frozen_trunk(xception)
    assert [layer.name for layer in head.layers[1:3]] == ["block14_sepconv2", "block14_sepconv2_bn"]
    images = synthetic(4, 3)["images"]
    np.testing.assert_allclose(head(trunk(images)), xception(images), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # over 10 s (two trainings each)
@pytest.mark.parametrize("recalibrate_bn", [False, True])
def test_killed_run_resumes_and_matches_an_uninterrupted_one(small, tmp_path, caplog, recalibrate_bn):
    whole, _, whole_history, _ = run(small, tmp_path / "whole", recalibrate_bn=recalibrate_bn)
    with pytest.raises(KeyboardInterrupt):
        run(small, tmp_path / "killed", callbacks=[_Kill()], recalibrate_bn=recalibrate_bn)
    with caplog.at_level(logging.INFO, logger="dfstudy.train"):
        resumed, _, resumed_history, _ = run(small, tmp_path / "killed", recalibrate_bn=recalibrate_bn)
    assert "resuming from epoch 2" in caplog.text
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(resumed_history[cols], whole_history[cols])
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    assert not (tmp_path / "killed" / "backup").exists()  # finished: nothing left to resume
    assert not (tmp_path / "killed" / "best.keras").exists()  # the model was returned


@pytest.mark.slow  # over 10 s
def test_a_kill_before_the_first_backup_starts_over_to_the_same_result(small, tmp_path):
    _, _, whole_history, _ = run(small, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(small, tmp_path / "killed", callbacks=[_Kill()], backup_every=3600)
    assert not (tmp_path / "killed" / "backup").exists()  # epoch 1 ended well within the interval
    _, _, history, _ = run(small, tmp_path / "killed", backup_every=3600)
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(history[cols], whole_history[cols])


def test_the_best_epoch_is_written_when_asked_and_the_model_trains_on_untouched(tmp_path):
    keras.utils.set_random_seed(0)
    model = _dropout_bn_model()
    kept = T._Best(tmp_path / "best.keras", 0.5)  # 0.5: the best of the epochs a resume restored
    kept.offer(model, 0.5)
    kept.write(model)
    assert not kept.path.exists()  # a tie keeps the earlier epoch, whose file is the resumed run's
    kept.offer(model, 0.7)
    best = [w.copy() for w in model.get_weights()]
    for variable in model.weights:  # training goes on
        variable.assign(variable + 1.0)
    later = model.get_weights()
    kept.offer(model, 0.6)
    kept.write(model)
    for a, b in zip(model.get_weights(), later):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(keras.saving.load_model(kept.path, compile=False).get_weights(), best):
        np.testing.assert_array_equal(a, b)


def test_training_stops_when_no_later_epoch_could_be_kept():
    rows = [{"val_accuracy": v} for v in (0.6, 0.8, 0.7, 0.8)]
    assert T._why_stop(rows, 2)  # 0.7 and 0.8 do not beat 0.8
    assert T._why_stop(rows, 3) is None  # 0.8 beat 0.6
    assert T._why_stop(rows[:2], 2) is None and T._why_stop(rows, None) is None
    assert T._why_stop(rows + [{"val_accuracy": 0.9}], 2) is None
    # only a strictly higher accuracy replaces the kept epoch: after a perfect one, none can, patience or not
    perfect = rows[:1] + [{"val_accuracy": 1.0}]
    assert "1.0" in T._why_stop(perfect, None) and "1.0" in T._why_stop(perfect, 5)


def _cli(split_dir, out, workdir, *extra):
    return [sys.executable, "-m", "dfstudy.train", "--arch", "MesoNet", "--trainset", "SYNTH",
            "--train", str(split_dir / "train.npz"), "--val", str(split_dir / "val.npz"), "--out", str(out),
            "--workdir", str(workdir), "--batch-size", "4", "--threads", "1", "--seed", str(SEED),
            "--backup-every", "0", *extra]


@pytest.mark.slow  # two training subprocesses, about 20 s
def test_sigkill_mid_epoch_then_rerun_ends_as_an_uninterrupted_run(small, tmp_path):
    """A training process killed with SIGKILL in its third epoch, rerun with the same arguments, resumes after
    epoch 2 and ends with the same history and weights as a run that was never interrupted."""
    for part, split in zip(("train", "val"), small):
        np.savez(tmp_path / f"{part}.npz", **split)
    opts = ("--epochs", "7", "--patience", "3")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    whole = subprocess.run(_cli(tmp_path, tmp_path / "whole.keras", tmp_path / "w1", *opts), env=env,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed_out, work = tmp_path / "killed.keras", tmp_path / "w2"
    proc = subprocess.Popen(_cli(tmp_path, killed_out, work, *opts), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = work / "backup" / "state.json"
    try:
        while proc.poll() is None and not (state.exists() and len(json.loads(state.read_text())["history"]) == 2):
            time.sleep(0.01)
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(signal.SIGKILL)  # epoch 3 is under way: its state is not saved yet
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL and not killed_out.exists()
    assert len(json.loads(state.read_text())["history"]) == 2
    again = subprocess.run(_cli(tmp_path, killed_out, work, *opts), env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from epoch 3" in again.stderr
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed_history.csv")[cols],
                                  pd.read_csv(tmp_path / "whole_history.csv")[cols])
    a, b = (keras.saving.load_model(p, compile=False) for p in (killed_out, tmp_path / "whole.keras"))
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.array(x), np.array(y), err_msg=x.path)
    card = json.loads(killed_out.with_suffix(".json").read_text())
    assert card["patience"] == 3 and card["epochs_run"] == len(pd.read_csv(tmp_path / "killed_history.csv"))


def _dropout_bn_model():
    """Dense -> Dropout -> Dense "pre" -> trainable BN "bn" -> frozen BN "frozen" -> sigmoid."""
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(4, name="pre")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.BatchNormalization(name="frozen")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.get_layer("frozen").trainable = False
    return model


def test_recalibration_gives_batchnorm_the_dropout_free_statistics():
    keras.utils.set_random_seed(0)
    model = _dropout_bn_model()
    x = np.random.default_rng(0).normal(3, 2, (50, 8)).astype("float32")
    pre = keras.Model(model.inputs, model.get_layer("pre").output)(x)  # inference: no dropout
    pre = keras.ops.convert_to_numpy(pre)
    bn, frozen = model.get_layer("bn"), model.get_layer("frozen")
    frozen_before = [keras.ops.convert_to_numpy(w) for w in frozen.weights]
    # uneven chunks (16, 16, 16, 2): a size-weighted running mean is still the mean over all images
    T.recalibrate_batchnorm(model, x, batch_size=16)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), pre.mean(0), rtol=1e-5, atol=1e-5)
    # one chunk: the variance is the population variance of the dropout-free inputs
    T.recalibrate_batchnorm(model, x, batch_size=len(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), pre.var(0), rtol=1e-4)
    assert model.get_layer("drop").rate == 0.5 and bn.momentum == 0.99  # restored
    for w, w0 in zip(frozen.weights, frozen_before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), w0)  # frozen layers keep theirs


@pytest.mark.slow  # over 10 s (three trainings)
def test_same_seed_same_history_other_seed_other_history(small, tmp_path):
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    first = run(small, tmp_path / "a")[2][cols]
    pd.testing.assert_frame_equal(run(small, tmp_path / "b")[2][cols], first)
    assert not run(small, tmp_path / "c", seed=SEED + 1)[2][cols].equals(first)


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert np.array_equal(T.epoch_order(100, 3, 5), T.epoch_order(100, 3, 5))
    assert not np.array_equal(T.epoch_order(100, 3, 5), T.epoch_order(100, 3, 6))
    assert sorted(T.epoch_order(100, 3, 5)) == list(range(100))


def test_bad_strategy_arguments(data, original, tmp_path):
    model = models.build("MesoNet", (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="init_model"):
        T.train_detector(model, data[0], data[1], 1, 1e-3, 32, SEED, tmp_path, strategy="transfer")
    with pytest.raises(ValueError, match="not in model"):
        T.train_detector(model, data[0], data[1], 1, 1e-3, 32, SEED, tmp_path, strategy="transfer",
                         init_model=original[1], trainable_layers=["nope"])


@pytest.mark.slow  # a training subprocess per backend, over 10 s each
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_cli_trains_and_writes_model_card_history(small, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} not installed")
    for part, split in zip(("train", "val"), small):
        np.savez(tmp_path / f"{part}.npz", **split)
    out = tmp_path / "models" / "original.keras"
    cmd = [sys.executable, "-m", "dfstudy.train", "--arch", "MesoNet", "--trainset", "SYNTH",
           "--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--out", str(out),
           "--workdir", str(tmp_path / "work"), "--epochs", "1", "--batch-size", "64", "--threads", "1"]
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["backend"] == backend and card["epochs"] == 1 and card["trainset"] == "SYNTH"
    assert len(pd.read_csv(tmp_path / "models" / "original_history.csv")) == 1
    assert keras.saving.load_model(out, compile=False).name == "mesonet"


# predict: scoring crops, and the `dfstudy predict` command on images and a video ---------------------


def test_score_images_matches_predict():
    from dfstudy.predict import score_images

    model = models.build("MesoNet", (SIZE, SIZE, 3))
    images = synthetic(10, 3)["images"]
    scores = score_images(model, images, batch_size=4)
    assert scores.shape == (10,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, model.predict(images, verbose=0).ravel(), rtol=1e-5, atol=1e-6)


def test_predict_command_scores_videos_and_images(tmp_path, capsys):
    import cv2

    from dfstudy import predict

    drawn = pytest.importorskip("test_faces")  # its procedurally drawn faces, which dlib finds
    folder = tmp_path / "inputs"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.png"), cv2.cvtColor(drawn.face_frame(128, 128, s=64), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "empty.png"), drawn.textured_background(128, 128))
    video = drawn.good_video(tmp_path / "clip.mp4", n=6)
    model = models.build("MesoNet", (64, 64, 3))
    model.save(tmp_path / "m.keras")

    predict.main(["--model", str(tmp_path / "m.keras"), video, str(folder), "--frames", "2",
                  "--save-crops", str(tmp_path / "crops"), "--out", str(tmp_path / "scores.csv")])
    table = pd.read_csv(tmp_path / "scores.csv").set_index("path")
    assert "clip.mp4" in capsys.readouterr().out
    clip, face, empty = table.loc[video], table.loc[str(folder / "face.png")], table.loc[str(folder / "empty.png")]
    assert clip["kind"] == "video" and clip["faces"] == 2 and 0 <= clip["score"] <= 1
    assert face["faces"] == 1 and face["verdict"] in ("real", "fake")
    assert empty["faces"] == 0 and np.isnan(empty["score"]) and empty["note"] == "no face"
    crops = sorted((tmp_path / "crops").glob("*clip_f*.png"))
    assert len(crops) == 2
    images = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in crops])
    assert images.shape == (2, 64, 64, 3)
    assert clip["score"] == pytest.approx(float(predict.score_images(model, images).mean()), abs=1e-3)


def _one_epoch(images, labels, workers):
    keras.utils.set_random_seed(SEED)
    model = models.build("MesoNet", images.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    feed = T.Batches(images, labels, 16, T.epoch_order(len(images), SEED, 0))
    feed.workers = workers
    model.fit(feed, epochs=1, shuffle=False, verbose=0)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_the_enqueuer_feeds_the_batches_keras_default_feeds_in_the_same_order():
    """Batches goes through Keras' thread enqueuer (FETCH_WORKERS > 1) for speed; it must not reorder."""
    assert batches.FETCH_WORKERS > 1
    images, labels = synthetic(64, 3).values()
    ours, default = _one_epoch(images, labels, batches.FETCH_WORKERS), _one_epoch(images, labels, 1)
    for mine, theirs in zip(ours, default, strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="a TensorFlow tracing matter")
def test_the_training_step_is_traced_once(small, tmp_path, monkeypatch):
    """Keras creates the optimizer's and metrics' variables in the first trace unless they exist, and
    TensorFlow then traces the step a second time; train_detector builds them first."""
    traces = []
    step = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda self, data: traces.append(1) or step(self, data))
    run(small, tmp_path, epochs=1)
    assert len(traces) == 1
