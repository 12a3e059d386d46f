"""Causal analysis (RQ4): effects are exact on hand-built models, fast paths equal the per-neuron loop,
rankings and top-k overlap counts are right, and the CLIs write what the workflow expects."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers

from dfstudy import causal
from dfstudy.causal import (ace, ace_from_features, ace_loop, ace_loop_from_features, features, finding4,
                            rank_neurons, select_samples, split_model, topk_overlap)

try:
    from dfstudy.models import build, causal_layer
except ImportError:  # the models package is written in parallel; fall back to look-alikes
    build = causal_layer = None


def two_neuron_model():
    """Input(4) -> Dense(8) "features" -> Dense(1, sigmoid) that reads only neurons 2 and 5.

    Integer inputs and weights and dyadic output weights keep every sum exact, so a neuron with zero
    output weight must have an effect of exactly 0 whatever the evaluation order.
    """
    inp = keras.Input((4,), name="x")
    feats = layers.Dense(8, use_bias=False, name="features")
    head_out = layers.Dense(1, activation="sigmoid", name="fake_prob")
    model = keras.Model(inp, head_out(feats(inp)))
    rng = np.random.default_rng(0)
    feats.set_weights([rng.integers(-3, 4, size=(4, 8)).astype("float32")])
    w = np.zeros((8, 1), "float32")
    w[2], w[5] = 0.5, -0.25
    head_out.set_weights([w, np.array([0.125], "float32")])
    return model


def _images_two_neuron(n=20):
    return np.random.default_rng(1).integers(0, 6, size=(n, 4)).astype("float32")


@pytest.mark.parametrize("method", ["rank1", "batched"])
def test_only_the_two_wired_neurons_have_an_effect(method):
    model = two_neuron_model()
    df = ace(model, _images_two_neuron(), "features", grid_size=4, method=method)
    assert df.attrs["method"] == method
    assert set(rank_neurons(df)[:2]) == {2, 5}
    others = df[~df["neuron"].isin([2, 5])]
    assert (others["effect"] == 0.0).all()
    assert (df.loc[df["neuron"].isin([2, 5]), "effect"] > 0.01).all()
    loop = ace_loop(model, _images_two_neuron(), "features", grid_size=4)
    np.testing.assert_allclose(df["effect"], loop["effect"], atol=1e-7)


def test_auto_picks_the_rank1_path_only_when_it_applies():
    model = two_neuron_model()
    assert ace(model, _images_two_neuron(), "features").attrs["method"] == "rank1"
    inp = keras.Input((4,))
    h = layers.Dense(8, name="features")(inp)
    x = layers.LayerNormalization()(h)  # mixes units: no rank-1 update
    model2 = keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))
    assert ace(model2, _images_two_neuron(), "features").attrs["method"] == "batched"


def test_correctness_measure_on_a_hand_case():
    # h = x; P(fake) = sigmoid(10 h0 - 5): "fake" iff h0 >= 0.5; h1 is ignored.
    inp = keras.Input((2,))
    feats = layers.Dense(2, use_bias=False, name="features")
    out = layers.Dense(1, activation="sigmoid")
    model = keras.Model(inp, out(feats(inp)))
    feats.set_weights([np.eye(2, dtype="float32")])
    out.set_weights([np.array([[10.0], [0.0]], "float32"), np.array([-5.0], "float32")])
    x = np.array([[0, 3], [1, 1], [0.2, 0], [0.8, 2]], "float32")
    y = np.array([0, 1, 1, 1])
    # grid of h0: 0, 1/3, 2/3, 1. do(h0 < .5): all "real" -> accuracy 1/4; do(h0 >= .5): all "fake" -> 3/4.
    for method in ("rank1", "batched"):
        df = ace(model, x, "features", measure="correctness", labels=y, method=method).set_index("neuron")
        np.testing.assert_allclose(df.loc[0, ["m0", "m1", "m2", "m3"]].to_numpy(float), [.25, .25, .75, .75])
        assert df.loc[0, "effect"] == pytest.approx(0.5)
        assert df.loc[0, "base"] == pytest.approx(0.75)  # predictions real, fake, real, fake
        assert df.loc[0, "max_drop"] == pytest.approx(0.5)
        assert df.loc[1, "effect"] == 0.0
    with pytest.raises(ValueError, match="labels"):
        ace(model, x, "features", measure="correctness")


def _meso_like(size=32):
    """Meso-4's head on a short conv stem: Flatten "features" -> Dropout -> Dense(16) -> LeakyReLU -> Dropout
    -> Dense(1)."""
    inp = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inp)
    for filters in (8, 16):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(4)(x)
    x = layers.Flatten(name="features")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(16)(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="fake_prob")(x)), "features"


def _shallow_like(size=16):
    """ShallowNet's head: Dense(64, relu) "fc1" -> BatchNormalization -> Dropout -> Dense(1)."""
    inp = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.25)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="fake_prob")(x)), "fc1"


def _trained(arch):
    """A detector with non-trivial weights: one epoch on random images, then scrambled BN moving statistics."""
    keras.utils.set_random_seed(7)
    if build is not None:
        size = {"MesoNet": 64, "ShallowNet": 32}[arch]
        model, layer = build(arch, (size, size, 3)), causal_layer(arch)
    else:
        model, layer = _meso_like() if arch == "MesoNet" else _shallow_like()
        size = model.inputs[0].shape[1]
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(48, size, size, 3)).astype("uint8")
    y = rng.integers(0, 2, size=48).astype("float32")
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    model.fit(x.astype("float32"), y, batch_size=16, epochs=1, verbose=0)
    for bn in [lay for lay in model.layers if isinstance(lay, layers.BatchNormalization)]:
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                        mean + rng.normal(0, 0.1, mean.shape), var * rng.uniform(0.5, 2.0, var.shape)])
    return model, layer, x[:24], y[:24]


def _compare_with_loop(arch, require_xla=False):
    """The rank-1 and batched paths against the per-neuron loop, on a detector with non-trivial weights."""
    model, layer, x, y = _trained(arch)
    head, tail = split_model(model, layer)
    h = features(head, x)
    assert h.std() > 0
    n = h.reshape(len(h), -1).shape[1]
    subset = np.arange(n) if n <= 64 else np.linspace(0, n - 1, 48).astype(int)
    loop = ace_loop_from_features(tail, h, neurons=subset).set_index("neuron")
    assert loop["effect"].max() > 1e-4  # the comparison is not between zeros
    for method in ("rank1", "batched"):
        fast = ace_from_features(tail, h, method=method, neurons=subset, chunk_elements=2000)  # several blocks
        fast = fast.set_index("neuron")
        assert fast.attrs["method"] == method
        if method == "rank1" and require_xla:  # the compiled block really ran through XLA
            assert all(m.jit_compile for m, _ in causal._rank1_plan(tail).evaluators.values())
        cols = ["effect", "m0", "m1", "m2", "m3", "base"]
        np.testing.assert_allclose(fast.loc[subset, cols], loop[cols], atol=1e-6, rtol=0)
    # the split model reproduces the detector in inference mode (dropout off, BN on moving statistics)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tail(h, training=False)),
                               model.predict(x.astype("float32"), verbose=0), atol=1e-6)
    # correctness: same accuracies under every intervention, bar samples sitting on the threshold
    fast_c = ace_from_features(tail, h, measure="correctness", labels=y, neurons=subset)
    loop_c = ace_loop_from_features(tail, h, measure="correctness", labels=y, neurons=subset)
    assert np.abs(fast_c["effect"].to_numpy() - loop_c["effect"].to_numpy()).max() <= 1 / len(y) + 1e-12


@pytest.mark.parametrize("arch", ["MesoNet", "ShallowNet"])
def test_vectorised_paths_equal_the_loop(arch):
    _compare_with_loop(arch)


@pytest.mark.slow  # XLA compilation, about 10 s
def test_vectorised_paths_equal_the_loop_under_xla_as_real_runs_use_them():
    """Real runs call configure_backend(deterministic=False), so the rank-1 block is XLA-compiled. A pytest
    session that imported tests/test_train.py has TensorFlow's op determinism on for good, which makes
    Keras refuse XLA; this test therefore runs the comparison in a fresh interpreter with determinism off."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA through Keras' jit_compile is TensorFlow's path here")
    script = (
        "import sys; sys.path.insert(0, {tests!r})\n"
        "from dfstudy.train import configure_backend\n"
        "configure_backend(1, deterministic=False)\n"
        "from tensorflow.python.framework.config import is_op_determinism_enabled\n"
        "assert not is_op_determinism_enabled()\n"
        "import test_causal\n"
        "for arch in ('MesoNet', 'ShallowNet'):\n"
        "    test_causal._compare_with_loop(arch, require_xla=True)\n"
        "print('XLA-OK')\n"
    ).format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(causal.__file__).parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0 and "XLA-OK" in run.stdout, run.stdout[-2000:] + run.stderr[-4000:]


def test_study_code_grid_range_clips_and_comes_from_other_images():
    rng = np.random.default_rng(0)
    other = rng.uniform(2, 3, size=(10, 4)).astype("float32")  # all > 1: low end clipped to 1
    other[:, 1] = -rng.uniform(2, 3, size=10)  # all < 0: high end clipped to 0
    low, high = causal.study_code_range(other)
    assert low[0] == 1 and high[0] == other[:, 0].max()
    assert low[1] == other[:, 1].min() and high[1] == 0
    h = rng.normal(size=(6, 4)).astype("float32")
    grid = causal.intervention_grid(h, 4, (low, high))
    np.testing.assert_allclose(grid[0], low, rtol=1e-6)
    np.testing.assert_allclose(grid[-1], high, rtol=1e-6)
    model = two_neuron_model()
    head, tail = split_model(model, "features")
    feats = features(head, _images_two_neuron())
    value_range = causal.study_code_range(features(head, _images_two_neuron(30)[20:]))
    fast = ace_from_features(tail, feats, value_range=value_range)
    loop = ace_loop_from_features(tail, feats, value_range=value_range)
    np.testing.assert_allclose(fast["effect"], loop["effect"], atol=1e-7)
    assert not np.allclose(fast["effect"], ace_from_features(tail, feats)["effect"])


def test_split_model_rejects_a_tail_that_is_not_a_chain():
    inp = keras.Input((4,))
    h = layers.Dense(8, name="features")(inp)
    a = layers.Dense(8)(h)
    x = layers.Add()([h, a])
    model = keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))
    with pytest.raises(ValueError, match="chain"):
        split_model(model, "features")
    with pytest.raises(ValueError):
        split_model(model, "no_such_layer")


def test_rank_neurons_is_descending_with_stable_ties():
    assert rank_neurons([0.1, 0.5, 0.1, 0.9, np.nan]).tolist() == [3, 1, 0, 2, 4]
    df = pd.DataFrame({"neuron": [4, 2, 7], "effect": [0.2, 0.2, 0.3]})
    assert rank_neurons(df).tolist() == [7, 2, 4]


def test_topk_overlap_counts_on_a_hand_made_ranking():
    rankings = {  # 8 neurons, 5 datasets
        "A": [0, 1, 2, 3, 4, 5, 6, 7],
        "B": [0, 2, 1, 4, 3, 5, 6, 7],
        "C": [0, 5, 6, 1, 2, 3, 4, 7],
        "D": [1, 0, 7, 3, 2, 4, 5, 6],
        "E": [7, 6, 0, 1, 2, 3, 4, 5],
    }
    t = topk_overlap(rankings, fractions=(1 / 4, 1 / 2)).set_index(["k", "count"])["n_neurons"]
    # k = 2: 0 in A,B,C,D (4); 1 in A,D (2); 2 in B (1); 5 in C (1); 7,6 in E (1 each)
    assert [t[(2, c)] for c in range(1, 6)] == [4, 1, 0, 1, 0]
    # k = 4: 0 and 1 in all five; 2 in A,B; 3 in A,D; 6 in C,E; 7 in D,E; 4 in B; 5 in C
    assert [t[(4, c)] for c in range(1, 6)] == [2, 4, 0, 0, 2]
    assert t.groupby("k").sum().to_dict() == {2: 6, 4: 8}  # union sizes
    with pytest.raises(ValueError, match="permutation"):
        topk_overlap({"A": [0, 1, 2], "B": [0, 1, 1]})


def test_select_samples_is_balanced_seeded_and_tolerates_small_splits():
    labels = np.array([1] * 30 + [0] * 10)
    idx = select_samples(labels, 16, seed=1)
    assert len(idx) == 16 and (labels[idx] == 1).sum() == 8
    assert idx.tolist() == select_samples(labels, 16, seed=1).tolist()
    idx = select_samples(labels, 30, seed=1)  # only 10 real: fakes fill the rest
    assert len(idx) == 30 and (labels[idx] == 0).sum() == 10
    assert len(select_samples(labels, 1920, seed=1)) == 40


def test_finding4_verdict():
    rows = []
    for det, n5 in (("MesoNet1", 3), ("MesoNet2", 0)):
        for c in range(1, 6):
            rows.append(dict(detector=det, fraction=1 / 16, k=4, count=c, n_neurons=n5 if c == 5 else 1,
                             layer_size=64, n_datasets=5))
    result = finding4(pd.DataFrame(rows), permutations=200, seed=1)
    assert result["verdict"] == "partly supported"
    assert result["detectors_with_universal_neuron"] == 1
    assert "1 of 2 detectors" in result["sentence"]
    # the paper's reading: 'all five' is the most frequent count only for MesoNet1 (3 > 1)
    assert result["readings"]["paper"]["verdict"] == "partly supported"
    assert result["readings"]["lenient"]["verdict"] == "partly supported"
    # random top-4-of-64 sets almost never share a neuron on all five: 3 such neurons is far above chance
    cell = result["per_detector"][0]["by_k"]["1/16"]
    assert cell["perm_mean"] < 0.01 and cell["perm_p"] < 0.01
    assert result["per_detector"][1]["by_k"]["1/16"]["perm_p"] == 1.0
    assert result["permutation"]["detectors_above_p95"] == 1


def test_permutation_baseline_matches_random_topk_sets():
    counts = causal.permutation_baseline(20, 10, 2, permutations=2000, seed=0)
    # two random halves of 20 share 5 neurons on average (hypergeometric mean 10 * 10 / 20)
    assert counts.mean() == pytest.approx(5, abs=0.15)
    assert counts.min() >= 0 and counts.max() <= 10
    assert (causal.permutation_baseline(20, 20, 5, permutations=3) == 20).all()


def test_cli_effects_then_summaries(tmp_path):
    model = two_neuron_model()
    model.save(tmp_path / "original.keras")
    rng = np.random.default_rng(0)
    outs = []
    for name in ("CELEB", "FS", "NT", "DF", "DFD"):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 6, size=(12, 4)).astype("uint8"),
                 labels=np.repeat([0, 1], 6).astype("uint8"))
        outs.append(tmp_path / "causal" / "CELEB" / "MesoNet" / "original" / f"{name}.parquet")
    argv = ["rank", "--model", str(tmp_path / "original.keras"), "--layer", "features", "--n-samples", "8",
            "--grid", "4", "--seed", "1", "--threads", "1"]
    for name, out in zip(("CELEB", "FS", "NT", "DF", "DFD"), outs):
        argv += ["--split", str(tmp_path / f"{name}.npz"), "--out", str(out)]
    causal.main(argv)
    effects = pd.read_parquet(outs[0])
    assert list(effects.columns) == ["neuron", "effect", "rank"]
    assert set(effects.loc[effects["rank"] <= 2, "neuron"]) == {2, 5}
    overlap = tmp_path / "causal" / "CELEB" / "MesoNet" / "original_overlap.csv"
    causal.main(["summarize", "--effects", *map(str, outs), "--out", str(overlap)])
    t = pd.read_csv(overlap)
    assert t["detector"].unique().tolist() == ["MesoNet1"]
    assert t["datasets"].iloc[0] == "CELEB|FS|NT|DF|DFD"
    # neurons 2 and 5 are the top 2 = 1/4 of 8 on all five datasets
    assert t.query("fraction == 0.25 and count == 5")["n_neurons"].item() == 2
    table, findings = tmp_path / "rq4_overlap.csv", tmp_path / "findings_rq4.json"
    causal.main(["summarize", "--overlaps", str(overlap), "--table", str(table), "--findings", str(findings)])
    assert len(pd.read_csv(table)) == len(t)
    assert json.loads(findings.read_text())["verdict"] == "supported"


def test_summaries_name_detectors_from_the_study(tmp_path):
    from dfstudy.study import Study

    rng = np.random.default_rng(0)
    effects = {d: pd.DataFrame({"neuron": np.arange(8), "effect": rng.normal(size=8)}) for d in ("F2F", "FS")}
    overlap = tmp_path / "causal" / "F2F" / "MesoNet" / "transfer_overlap.csv"
    overlap.parent.mkdir(parents=True)
    causal.overlap_table(effects).to_csv(overlap, index=False)
    names = {}
    for label, extra in (("paper", []), ("F2F only", ["--study", Study(trainsets=("F2F",)).to_json()])):
        table = tmp_path / f"{label}.csv"
        causal.main(["summarize", "--overlaps", str(overlap), "--table", str(table), "--permutations", "0", *extra])
        names[label] = pd.read_csv(table)["detector"].unique().tolist()
    # the paper numbers F2F after CELEB (4-6); a run trained on F2F alone numbers it first
    assert names == {"paper": ["MesoNet5"], "F2F only": ["MesoNet2"]}


def test_figure5_draws_one_panel_per_detector_and_k(tmp_path):
    from dfstudy import figures_rq4

    rows = [dict(arch="MesoNet", trainset=t, strategy=s, detector=f"MesoNet{n}", fraction=f, k=int(f * 64),
                 count=c, n_neurons=c * n, layer_size=64, n_datasets=5)
            for n, (t, s) in enumerate([("CELEB", "original"), ("F2F", "merge")], start=1)
            for f in (1 / 16, 1 / 2) for c in range(1, 6)]
    table = tmp_path / "rq4_overlap.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    fig = figures_rq4.figure5(pd.DataFrame(rows), arch="MesoNet")
    assert len(fig.axes) == 4
    figures_rq4.main(["--table", str(table), "--arch", "MesoNet", "--out", str(tmp_path / "fig5.png"), "--dpi", "50"])
    assert (tmp_path / "fig5.png").stat().st_size > 0 and (tmp_path / "fig5.pdf").stat().st_size > 0
