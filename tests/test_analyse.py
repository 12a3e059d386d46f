"""One detector's analyses in one process (dfstudy.analyse) write what the three stage commands write."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("Grad-CAM uses tf-explain, which needs the TensorFlow backend", allow_module_level=True)

from test_gradcam import random_images, small_detector  # noqa: E402

from dfstudy import analyse, causal, evaluate, gradcam  # noqa: E402

SIZE, SETS = 32, ("CELEB", "FS")


def test_sections_split_the_command_line_at_the_stage_names():
    own, stages = analyse.sections(["--model", "m.keras", "--threads", "1", "predict", "--split", "a.npz",
                                    "--out", "a.parquet", "rank", "--layer", "fc", "--seed", "2"])
    assert own == ["--model", "m.keras", "--threads", "1"]
    assert stages == {"predict": ["--split", "a.npz", "--out", "a.parquet"], "rank": ["--layer", "fc", "--seed", "2"]}
    with pytest.raises(SystemExit, match="given twice"):
        analyse.sections(["--model", "m", "gradcam", "--seed", "1", "gradcam"])
    with pytest.raises(SystemExit) as exc:  # a process with no stage is refused, before any model loads
        analyse.main(["--model", "missing.keras"])
    assert exc.value.code == 2


def _detector(tmp_path):
    model = tmp_path / "models" / "CELEB" / "Tiny" / "original.keras"
    model.parent.mkdir(parents=True)
    small_detector(SIZE, seed=1).save(model)
    for i, name in enumerate(SETS):
        split = tmp_path / "splits" / name / "test.npz"
        split.parent.mkdir(parents=True)
        ids = np.array([f"{name}:{j:02d}" for j in range(16)])
        np.savez(split, images=random_images(16, SIZE, seed=i), labels=(np.arange(16) % 2).astype(np.uint8),
                 image_ids=ids, video_ids=ids)
    return model


def _stages(tmp_path, out):
    """Each stage's options, writing under `out`."""
    def pairs(kind, suffix):
        return [arg for name in SETS for arg in ("--split", str(tmp_path / "splits" / name / "test.npz"),
                                                "--out", str(out / kind / f"{name}{suffix}"))]
    return {
        "predict": [*pairs("predictions", ".parquet"), "--batch-size", "5"],
        "gradcam": [*pairs("gradcam", ""), "--n-images", "4", "--seed", "3", "--batch-size", "3",
                    "--faithfulness", str(out / "gradcam" / "faithfulness.csv"), "--faithfulness-images", "3"],
        "rank": ["--layer", "head_dense", *pairs("causal", ".parquet"), "--n-samples", "8", "--grid", "3",
                 "--seed", "1"],
    }


def _fix_gradcam_outs(options):
    """dfstudy.gradcam writes one file per variant: '{variant}' in each --out."""
    return [f"{arg}/{{variant}}.npz" if prev == "--out" else arg for prev, arg in zip(["", *options], options)]


def _same_files(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(a / rel), pd.read_parquet(b / rel))
        elif rel.suffix == ".npz":
            with np.load(a / rel) as x, np.load(b / rel) as y:
                assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files), rel
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    return files


def test_one_process_writes_what_the_three_commands_write(tmp_path):
    model = _detector(tmp_path)
    alone, together = _stages(tmp_path, tmp_path / "alone"), _stages(tmp_path, tmp_path / "together")
    common = ["--model", str(model), "--threads", "1"]
    evaluate.main([*common, *alone["predict"]])
    gradcam.main([*common, *_fix_gradcam_outs(alone["gradcam"])])
    causal.main(["rank", *common, *alone["rank"]])
    analyse.main([*common, "predict", *together["predict"], "gradcam", *_fix_gradcam_outs(together["gradcam"]),
                  "rank", *together["rank"]])
    files = _same_files(tmp_path / "alone", tmp_path / "together")
    assert {f.parts[0] for f in files} == {"predictions", "gradcam", "causal"}
    assert len(files) == 2 + 2 * 2 + 1 + 2  # predictions, maps of two variants, deletion test, effects


@pytest.mark.slow  # two processes, one on each backend
def test_on_jax_gradcam_runs_in_a_tensorflow_process_of_its_own(tmp_path):
    pytest.importorskip("jax")
    model = _detector(tmp_path)
    stages = _stages(tmp_path, tmp_path / "jax")
    argv = ["--model", str(model), "--threads", "1", "predict", *stages["predict"],
            "gradcam", *_fix_gradcam_outs(stages["gradcam"])]
    run = subprocess.run([sys.executable, "-m", "dfstudy.analyse", *argv], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on jax" in run.stderr and "stage gradcam on tensorflow" in run.stderr
    reference = tmp_path / "tf"
    gradcam.main(["--model", str(model), "--threads", "1", *_fix_gradcam_outs(_stages(tmp_path, reference)["gradcam"])])
    _same_files(reference / "gradcam", tmp_path / "jax" / "gradcam")
    scores = pd.read_parquet(tmp_path / "jax" / "predictions" / "FS.parquet")["score"]
    expected = evaluate.predict_split(keras.saving.load_model(model, compile=False),
                                      evaluate.load_split(tmp_path / "splits" / "FS" / "test.npz"))["score"]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)  # JAX's floats, TensorFlow's within 1e-5
