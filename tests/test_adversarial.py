"""Domain-adversarial fine-tuning (beyond the study): the gradient reversal on both backends, the domain
branch, the domains read from the packed parts, exact resume, and the fourth strategy in the workflow."""

import functools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from dfstudy import adversarial as A
from dfstudy import models, splits
from dfstudy import train as T
from dfstudy.models.gradient_reversal import GradientReversal
from dfstudy.study import Study

ROOT = Path(__file__).resolve().parents[1]
SIZE, SEED = 32, 11
STRENGTH = 0.7
ALL_FOUR = ("original", "transfer", "merge", "adversarial")
T.configure_backend(deterministic=True)


# the gradient reversal ------------------------------------------------------------------------------------


def _reversal_case(ramp_steps=None, steps_before=0):
    """Forward output and input gradient of a GradientReversal under a non-uniform upstream gradient, on
    the running backend; also the inputs and the upstream gradient, to check against."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5)).astype("float32")
    upstream = rng.normal(size=(4, 5)).astype("float32")  # a VJP with all ones would hide a wrong sign per entry
    layer = GradientReversal(STRENGTH, ramp_steps=ramp_steps)
    for _ in range(steps_before):
        layer(x, training=True)
    if keras.backend.backend() == "jax":
        import jax

        y, vjp = jax.vjp(lambda t: layer(t), x)
        (grad,) = vjp(upstream)
    else:
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = layer(t)
        grad = tape.gradient(y, t, output_gradients=tf.constant(upstream))
    strength = float(keras.ops.convert_to_numpy(layer.reversal()))
    return {"x": x, "upstream": upstream, "y": np.asarray(y), "grad": np.asarray(grad), "strength": strength}


CASES = {"constant": {}, "scheduled": {"ramp_steps": 10, "steps_before": 3}}


@functools.cache
def _on_backend(backend):
    """Every one of CASES of `_reversal_case` under `backend`: here when it is the running backend, else in a
    process of its own (a process has one Keras backend)."""
    if backend == keras.backend.backend():
        return {name: _reversal_case(**kwargs) for name, kwargs in CASES.items()}
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.pop("backend") == backend
    return {name: {k: np.asarray(v, dtype="float32") if isinstance(v, list) else v for k, v in case.items()}
            for name, case in out.items()}


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_reversal_is_identity_forward_and_negated_scaled_gradient_backward(backend):
    case = _on_backend(backend)["constant"]
    np.testing.assert_array_equal(case["y"], case["x"])  # exactly the identity
    assert case["strength"] == pytest.approx(STRENGTH)
    np.testing.assert_allclose(case["grad"], -STRENGTH * case["upstream"], rtol=1e-6)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_reversal_follows_danns_schedule(backend):
    # 3 of 10 steps done: lambda = 0.7 * (2 / (1 + exp(-10 * 0.3)) - 1)
    expected = STRENGTH * (2 / (1 + np.exp(-3.0)) - 1)
    case = _on_backend(backend)["scheduled"]
    np.testing.assert_array_equal(case["y"], case["x"])
    assert case["strength"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(case["grad"], -expected * case["upstream"], rtol=1e-5)
    fresh = GradientReversal(STRENGTH, ramp_steps=10)
    assert float(keras.ops.convert_to_numpy(fresh.reversal())) == 0.0  # DANN starts without reversal


def test_reversal_survives_save_and_load(tmp_path):
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(2)(GradientReversal(0.3, ramp_steps=50, gamma=5.0, name="grl")(inputs))
    model = keras.Model(inputs, outputs)
    model.get_layer("grl").step.assign(7.0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("grl")
    assert isinstance(layer, GradientReversal)
    assert (layer.strength, layer.ramp_steps, layer.gamma) == (0.3, 50, 5.0)
    assert float(keras.ops.convert_to_numpy(layer.step)) == 7.0  # the schedule resumes where it was
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# the domain branch ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch, first", [("MesoNet", "head_drop1"), ("ShallowNet", "fc1")])
def test_domain_branch_copies_the_fake_head_and_shares_everything_else(arch, first):
    model = models.build(arch, (SIZE, SIZE, 3))
    head = A.head_layers(model)
    assert head[0].name == first and head[-1].name == "fake_prob"
    both = A.with_domain_branch(model)
    domain = [layer for layer in both.layers if layer.name not in {x.name for x in model.layers}]
    assert [type(layer) for layer in domain] == [GradientReversal, *(type(layer) for layer in head)]
    assert domain[-1].name == A.DOMAIN_OUTPUT
    # the detector's own layers are the very objects of the two-headed model: training one trains the other
    assert all(both.get_layer(layer.name) is layer for layer in model.layers)
    assert [w.shape for w in domain[-1].weights] == [w.shape for w in head[-1].weights]


def test_domain_labels_are_each_images_dataset():
    datasets = np.array(["CELEB", "FS", "CELEB", "NT", "NT"])
    np.testing.assert_array_equal(A.domain_labels(datasets, "CELEB"), [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(A.domain_labels(datasets, "FS"), [1, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="no image of F2F"):
        A.domain_labels(datasets, "F2F")


def test_make_splits_records_the_dataset_each_finetune_image_was_drawn_for():
    """F2F's finetune part holds its own images and FS/NT's; the reals of all three are FF++ originals, so
    only the recorded dataset tells them apart. Packing carries it into the arrays training reads."""
    from test_splits import DATASETS, SIZES, SOURCES, TRAINSETS, celeb_manifest, dfd_manifest, ffpp_manifest

    manifests = {"ffpp": ffpp_manifest(), "dfd": dfd_manifest(), "celebdf_v2": celeb_manifest("celebdf_v2", "celebdf"),
                 "celebdf_v1": celeb_manifest("celebdf_v1", "celebdf1", identities=6, test_identities=6)}
    parts, _ = splits.make_splits(manifests, SOURCES, DATASETS, TRAINSETS, SIZES, seed=7)
    finetune = parts[("F2F", "finetune")]
    assert finetune["dataset"].value_counts().to_dict() == {
        "F2F": SIZES["finetune_own"], "FS": SIZES["finetune_per_unseen"], "NT": SIZES["finetune_per_unseen"]}
    fakes = finetune[finetune["label"] == 1]
    method = fakes["video_id"].str.split(":").str[1].str.split("/").str[0]
    assert (fakes["dataset"].map({"F2F": "Face2Face", "FS": "FaceSwap", "NT": "NeuralTextures"}) == method).all()
    reals = finetune[finetune["label"] == 0]
    assert set(reals["dataset"]) == {"F2F", "FS", "NT"} and reals["video_id"].str.startswith("ffpp:youtube/").all()
    for part in ("train", "val", "test"):
        assert (parts[("F2F", part)]["dataset"] == "F2F").all()
    assert set(parts[("F2F", "finetune_val")]["dataset"]) == {"F2F", "FS", "NT"}
    domains = A.domain_labels(finetune["dataset"].to_numpy(str), "F2F")
    np.testing.assert_array_equal(domains, (finetune["dataset"] != "F2F").to_numpy())


def test_pack_adds_datasets_and_leaves_the_other_arrays_as_they_were(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    part = pd.DataFrame({"image_id": ["a", "b", "c"], "video_id": ["v1", "v1", "v2"], "identities": [""] * 3,
                         "label": [0, 1, 1], "image_path": paths, "dataset": ["CELEB", "FS", "NT"]})
    with_datasets, without = splits.pack(part), splits.pack(part.drop(columns="dataset"))
    assert list(with_datasets["datasets"]) == ["CELEB", "FS", "NT"]
    assert set(with_datasets) - set(without) == {"datasets"}
    for key, array in without.items():
        assert array.dtype == with_datasets[key].dtype and array.tobytes() == with_datasets[key].tobytes()


# training ----------------------------------------------------------------------------------------------------


def _data(n, seed):
    """test_train's noisy images with bright-square fakes; the second half is the target domain, tinted, so
    the domains differ."""
    from test_train import synthetic

    data = synthetic(n, seed)
    domains = (np.arange(n) >= n // 2).astype("float32")
    data["images"][domains == 1, ..., 0] //= 2
    return {**data, "domains": domains}


def _fine_tune(workdir, init, epochs=2, **kwargs):
    keras.utils.set_random_seed(SEED)
    model = models.build("MesoNet", (SIZE, SIZE, 3))
    return T.train_detector(model, _data(64, 0), _data(32, 1), epochs, 1e-3, 16, SEED, workdir,
                            strategy="adversarial", init_model=init, backup_every=0, trainset="SYNTH", **kwargs)


@pytest.fixture(scope="module")
def init(tmp_path_factory):
    """The 'original' detector: a MesoNet with seeded weights, saved and reloaded as training would."""
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("init") / "original.keras"
    models.build("MesoNet", (SIZE, SIZE, 3)).save(path)
    return keras.saving.load_model(path, compile=False)


def test_adversarial_fine_tune_keeps_the_plain_detector(init, tmp_path):
    best, history, card = _fine_tune(tmp_path / "work", init)
    assert [layer.name for layer in best.layers] == [layer.name for layer in init.layers]
    assert not isinstance(best.output, (list, tuple)) and best.output.shape[-1] == 1
    assert not any(layer.name.startswith("domain") for layer in best.layers)
    best.save(tmp_path / "adversarial.keras")  # the plain detector saves and loads without the reversal layer
    reloaded = keras.saving.load_model(tmp_path / "adversarial.keras", compile=False)
    assert not any(isinstance(layer, GradientReversal) for layer in reloaded.layers)
    changed = [not np.array_equal(a, b) for a, b in zip(best.get_weights(), init.get_weights())]
    assert any(changed)  # fine-tuned, every layer trainable: the feature extractor moved too
    assert not np.array_equal(best.get_layer("block1_conv").get_weights()[0], init.get_layer("block1_conv").get_weights()[0])
    assert list(history.columns) == [*T.HISTORY_COLUMNS, *T.DOMAIN_COLUMNS]
    assert history["domain_accuracy"].between(0, 1).all() and len(history) == 2
    assert (history["domain_loss"] < history["loss"]).all()  # the domain head's own loss, not the sum
    assert card["strategy"] == "adversarial" and card["target_domain_images"] == 32
    assert card["adversarial"] == T.ADVERSARIAL_DEFAULTS


class _Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("killed")


@pytest.mark.slow  # two fine-tunes, over 10 s
def test_killed_adversarial_run_resumes_exactly(init, tmp_path, caplog):
    """The domain head, the optimizer and the reversal's step count come back: the same weights as a whole run."""
    whole, whole_history, _ = _fine_tune(tmp_path / "whole", init)
    with pytest.raises(KeyboardInterrupt):
        _fine_tune(tmp_path / "killed", init, callbacks=[_Kill()])
    with caplog.at_level(logging.INFO, logger="dfstudy.train"):
        resumed, resumed_history, _ = _fine_tune(tmp_path / "killed", init)
    assert "resuming from epoch 2" in caplog.text
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", *T.DOMAIN_COLUMNS]
    pd.testing.assert_frame_equal(resumed_history[cols], whole_history[cols])
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)


# the workflow -------------------------------------------------------------------------------------------------


def test_adversarial_detectors_are_numbered_after_the_studys_and_fill_the_tables(tmp_path):
    from dfstudy import tables
    from test_tables import REF, fake_predictions

    study = Study(architectures=("MesoNet",), strategies=ALL_FOUR)
    assert [study.detector_name("MesoNet", t, "adversarial") for t in ("CELEB", "F2F")] == ["MesoNet7", "MesoNet8"]
    files = fake_predictions(tmp_path / "predictions", archs=("MesoNet",), study=study)
    out = tmp_path / "tables"
    tables.main(["--predictions", *map(str, files), "--reference", str(REF), "--out-dir", str(out),
                 "--n-boot", "20", "--seed", "1", "--log-level", "WARNING", "--study", study.to_json()])
    t4 = pd.read_csv(out / "table4.csv")
    assert t4.detector.tolist() == [f"MesoNet{n}" for n in range(1, 9)]
    assert t4.set_index("detector").at["MesoNet7", "strategy"] == "adversarial"
    t5 = pd.read_csv(out / "table5.csv")
    assert {"MesoNet7", "MesoNet8"} <= set(t5.detector)


def test_dry_run_trains_the_adversarial_detectors(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml"), "--directory", str(tmp_path),
           "--config", "detectors={strategies: [original, transfer, merge, adversarial]}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for trainset in ("CELEB", "F2F"):
        assert f"results/models/{trainset}/MesoNet/adversarial.keras" in run.stdout
        assert f"results/splits/{trainset}/finetune.npz" in run.stdout
    commands = [line for line in run.stdout.splitlines() if "--strategy adversarial" in line]
    assert commands and all("--reversal-strength 1.0 --reversal-schedule dann" in c for c in commands)
    assert all("--init results/models/" in c and "/original.keras" in c for c in commands)


if __name__ == "__main__":  # this backend's reversal cases, as JSON (see _on_backend)
    cases = {name: _reversal_case(**kwargs) for name, kwargs in CASES.items()}
    print(json.dumps({"backend": keras.backend.backend(),
                      **{name: {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in case.items()}
                         for name, case in cases.items()}}))
