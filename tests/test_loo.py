"""Leave-one-out over the FF++ methods (beyond the study): the held-out method never reaches training, parts
are balanced, sized, video-disjoint and seeded, the workflow plans the block, and the table counts right."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfstudy.config import ConfigError, check_loo
from dfstudy.loo import audit, finding, heldout_parts, loo_table, main, make_loo_splits
from dfstudy.splits import LeakageError, ShortSplitError
from test_splits import ffpp_manifest

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
# the demo's FF++ pairs (24 / 3 / 3) at the test manifest's 10 faces per video: val and test hold 60 reals
SIZES = {"train": 60, "val": 12, "test": 20}


@pytest.fixture(scope="module")
def manifest():
    return ffpp_manifest(pairs=(("train", 6), ("val", 3), ("test", 3)))


@pytest.fixture(scope="module")
def parts(manifest):
    return make_loo_splits(manifest, METHODS, SIZES, seed=7)[0]


def test_the_heldout_method_never_reaches_training(parts):
    for heldout in METHODS:
        for part in ("train", "val"):
            fakes = parts[(heldout, part)].query("label == 1")
            assert heldout not in set(fakes["method"])
            assert set(fakes["method"]) == set(METHODS) - {heldout}
        assert set(parts[(heldout, "test")].query("label == 1")["method"]) == {heldout}
        assert heldout not in set(parts[(heldout, "seen")]["method"])
    report = audit(parts, METHODS)
    assert report["ok"].all() and (report.drop(columns=["heldout", "ok"]) == 0).all().all()


def test_the_audit_catches_a_heldout_fake_or_a_test_video_in_training(manifest, parts):
    train_fake = manifest.query("method == 'Deepfakes' and official_split == 'train'").iloc[[0]]
    leaky = {**parts, ("Deepfakes", "train"): pd.concat([parts[("Deepfakes", "train")], train_fake])}
    with pytest.raises(LeakageError, match="Deepfakes"):
        audit(leaky, METHODS)
    test_real = parts[("FaceSwap", "test")].query("label == 0").iloc[[0]]
    leaky = {**parts, ("FaceSwap", "val"): pd.concat([parts[("FaceSwap", "val")], test_real])}
    with pytest.raises(LeakageError, match="FaceSwap"):
        audit(leaky, METHODS)


def test_parts_are_balanced_sized_and_video_disjoint(manifest, parts):
    split_of = dict(zip(manifest["video_id"], manifest["official_split"]))
    for heldout in METHODS:
        for part, size in (("train", 60), ("val", 12), ("test", 20), ("seen", 20)):
            table = parts[(heldout, part)]
            assert len(table) == size and table["label"].sum() == size // 2
            assert table["image_id"].is_unique
            shares = table.query("label == 1")["method"].value_counts()
            assert shares.max() - shares.min() <= 1  # the trained-on methods in equal shares
            official = {"seen": "test"}.get(part, part)
            assert {split_of[v] for v in table["video_id"]} == {official}
        training = set(parts[(heldout, "train")]["video_id"]) | set(parts[(heldout, "val")]["video_id"])
        assert not training & set(parts[(heldout, "test")]["video_id"])
        test, seen = parts[(heldout, "test")], parts[(heldout, "seen")]
        assert set(test.query("label == 0")["image_id"]) == set(seen.query("label == 0")["image_id"])
    # every run trains on the same reals: only the fakes differ between held-out methods
    reals = {frozenset(parts[(h, "train")].query("label == 0")["image_id"]) for h in METHODS}
    assert len(reals) == 1


def test_same_seed_same_parts(manifest, parts):
    again = make_loo_splits(manifest, METHODS, SIZES, seed=7)[0]
    assert all(again[k].equals(parts[k]) for k in parts)
    other = make_loo_splits(manifest, METHODS, SIZES, seed=8)[0]
    assert not all(other[k].equals(parts[k]) for k in parts)


def test_a_short_part_names_the_key_that_fixes_it(manifest):
    with pytest.raises(ShortSplitError, match=r"loo/Face2Face/train:.*lower loo\.train") as err:
        heldout_parts(manifest, METHODS, "Face2Face", {**SIZES, "train": 2000}, seed=7)
    assert "preprocess.frames_per_training_video" in str(err.value)
    with pytest.raises(ShortSplitError, match=r"preprocess\.frames_per_video or lower loo\.test"):
        heldout_parts(manifest, METHODS, "Face2Face", {**SIZES, "test": 400}, seed=7)


def predictions(correct_real_frames, correct_fake_frames, videos=4, frames=5):
    """Predictions on ``videos`` real and ``videos`` fake videos of ``frames`` frames; the first
    ``correct_*_frames`` frames of each class (in video order) are classified correctly."""
    rows = []
    for label, correct in ((0, correct_real_frames), (1, correct_fake_frames)):
        for i in range(videos * frames):
            right = i < correct
            score = (0.9 if label else 0.1) if right else (0.05 if label else 0.8)
            rows.append({"image_id": f"{label}-{i}", "video_id": f"v{label}-{i // frames}", "label": label,
                         "score": score})
    return pd.DataFrame(rows)


def test_the_table_counts_accuracies_right():
    # held-out: all 20 reals right, 7 of 20 fakes (video 1 all right, video 2 two of five): 27/40
    held, seen = predictions(20, 7), predictions(20, 20)
    table = loo_table({("Deepfakes", "MesoNet"): (held, seen), ("FaceSwap", "MesoNet"): (seen, seen)},
                      n_boot=200, seed=1)
    row = table.set_index(["heldout", "architecture"]).loc[("Deepfakes", "MesoNet")]
    assert row["accuracy"] == pytest.approx(100 * 27 / 40)
    assert row["seen_accuracy"] == pytest.approx(100.0)
    assert row["drop"] == pytest.approx(100 - 100 * 27 / 40)
    # videos: 4 reals right; fake video 1 (5/5) right, video 2 (2/5: not more than half) wrong: 5 of 8
    assert row["video_accuracy"] == pytest.approx(100 * 5 / 8)
    assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
    # the 13 missed fakes (0.05) rank below every real (0.1), the 7 caught ones above: AUC 7/20
    assert row["frame_auc"] == pytest.approx(7 / 20)
    assert row["frame_auc_lo"] <= row["frame_auc"] <= row["frame_auc_hi"]
    # video scores are the shares of frames called fake: reals 0, fakes 1, 0.4, 0, 0: AUC (1 + 1 + 0.5 + 0.5) / 4
    assert row["video_auc"] == pytest.approx(0.75)
    assert row["images"] == 40 and row["videos"] == 8
    mean = table.set_index(["heldout", "architecture"]).loc[("mean", "MesoNet")]
    assert mean["accuracy"] == pytest.approx((100 * 27 / 40 + 100) / 2)
    assert np.isnan(mean["accuracy_lo"])
    summary = finding(table)
    assert summary["hardest"] == "Deepfakes" and summary["mean_drop"] == pytest.approx((100 - 67.5) / 2)
    assert "beyond the study" in summary["sentence"]


def test_the_dry_run_plans_four_detectors_and_the_table(tmp_path):
    """Naming an architecture switches the block on: the default target then holds its table."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml"), "--config", "loo={architectures: [MesoNet]}"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, re.M))
    assert counts["train_loo_detector"] == "4" and counts["predict_loo_detector"] == "4"
    assert counts["make_loo_table"] == "1" and counts["audit_loo_splits"] == "1"
    trainings = [line for line in run.stdout.splitlines() if "dfstudy.train" in line and "--trainset LOO-" in line]
    assert all("--strategy original" in t and "--lr 0.001" in t for t in trainings) and len(trainings) == 4
    # --config merges into the demo's block: its sizes stay
    cfg = json.loads(re.search(r"dfstudy\.loo make .*--config-json '(.*?)'", run.stdout)[1])
    assert (cfg["loo"]["train"], cfg["loo"]["test"]) == (300, 60)


def test_bad_loo_config_names_the_key():
    config = {"loo": {"source": "ffpp", "methods": METHODS, "architectures": ["MesoNet"]},
              "sources": {"ffpp": {"adapter": "faceforensics"}, "dfd": {"adapter": "dfd"}},
              "detectors": {"learning_rate": {"MesoNet": 0.001}}}
    check_loo(config)
    for change, key in (({"source": "dfd"}, "loo.source"),
                        ({"methods": ["Deepfakes", "Celeb-synthesis"]}, "loo.methods"),
                        ({"architectures": ["ResNet"]}, "loo.architectures")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            check_loo({**config, "loo": {**config["loo"], **change}})
    with pytest.raises(ConfigError, match=r"detectors\.learning_rate.*loo\.architectures"):
        check_loo({**config, "detectors": {"learning_rate": {}}})


def test_the_cli_writes_parts_an_audit_and_the_table(tmp_path, manifest):
    manifest.to_parquet(tmp_path / "manifest.parquet")
    cfg = json.dumps({"loo": {**SIZES, "methods": METHODS}, "seed": 7})
    main(["make", "--manifest", str(tmp_path / "manifest.parquet"), "--config-json", cfg, "--out-dir", str(tmp_path)])
    main(["audit", "--splits-dir", str(tmp_path), "--config-json", cfg, "--out", str(tmp_path / "audit.csv")])
    assert pd.read_csv(tmp_path / "audit.csv")["ok"].all()
    pairs = []
    for heldout in METHODS:  # a detector that calls every fake it saw, and no held-out fake, fake
        folder = tmp_path / "predictions" / heldout
        folder.mkdir(parents=True)
        for part in ("test", "seen"):
            table = pd.read_csv(tmp_path / heldout / f"{part}.csv")
            table.assign(score=np.where(table["label"] == 1, 0.9 if part == "seen" else 0.2, 0.1))[
                ["image_id", "video_id", "label", "score"]].to_parquet(folder / f"{part}.parquet")
        pairs.append(f"{heldout}/MesoNet={folder}")
    main(["table", "--predictions", *pairs, "--n-boot", "50", "--out", str(tmp_path / "loo.csv")])
    table = pd.read_csv(tmp_path / "loo.csv")
    assert list(table["heldout"]) == [*METHODS, "mean"]
    assert (table["accuracy"] == 50).all() and (table["seen_accuracy"] == 100).all() and (table["drop"] == 50).all()
    assert "beyond the study" in json.loads((tmp_path / "loo.json").read_text())["sentence"]
    assert "| heldout" in (tmp_path / "loo.md").read_text()
