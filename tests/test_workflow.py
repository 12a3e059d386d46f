"""End to end: the real workflow on a tiny configuration, from rendering videos to the study report."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def snakemake(workdir, *args, timeout=1500, configfiles=()):
    configfiles = [str(ROOT / "tests/smoke.yaml"), *map(str, configfiles)]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", *configfiles, "--cores", "2", "--show-failed-logs", *args]
    # rules run `python -m dfstudy...`: the interpreter running the tests must be the one on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    shutil.copytree(ROOT / "config", workdir / "config")  # the default configfile is looked up there
    run = snakemake(workdir)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-8000:]
    return workdir


def test_broken_videos_are_skipped_with_reasons(study):
    skipped = pd.read_csv(study / "results/faces/celebdf_v2/skipped.csv")
    whole = skipped[skipped["frame"] == -1]
    assert {"unreadable", "no face"} <= set(whole["reason"])
    manifest = pd.read_parquet(study / "results/faces/ffpp/manifest.parquet")
    ok = manifest[manifest["status"] == "ok"]
    assert len(ok) and ok["image_path"].map(lambda p: (study / p).is_file()).all()


def test_splits_are_balanced_and_audited(study):
    audit = pd.read_csv(study / "results/splits/audit.csv")
    assert audit["ok"].all()
    for npz in (study / "results/splits").glob("*/*.npz"):
        with np.load(npz) as z:
            assert z["images"].dtype == np.uint8 and z["images"].shape[1:] == (32, 32, 3)
            assert 2 * int(z["labels"].sum()) == len(z["labels"]) > 0, npz


def test_every_detector_is_trained_evaluated_and_explained(study):
    cards = sorted((study / "results/models").glob("*/*/*.json"))
    assert len(cards) == 2 * 2 * 3  # trainsets x architectures (smoke) x strategies
    assert all(json.loads(c.read_text())["epochs"] >= 1 for c in cards)
    predictions = list((study / "results/predictions").glob("*/*/*/*.parquet"))
    assert len(predictions) == 6 * 6 + 6 * 7  # own set, FS, NT, DF, DFD + CELEB-M (CELEB) or FS-I, NT-I (F2F)
    variants = ("study_code", "heatmap")  # the default gradcam.variant
    assert len(list((study / "results/gradcam").glob("*/*/*/*/*.npz"))) == 12 * 5 * len(variants)
    assert len(list((study / "results/gradcam").glob("*/*/*/faithfulness.csv"))) == 12
    assert len(list((study / "results/causal").glob("*/*/*/*.parquet"))) == 12 * 5


def test_tables_findings_and_report(study):
    tables = study / "results/tables"
    for name in ("table4", "table5", "table6", "table7"):
        assert (tables / f"{name}.csv").stat().st_size > 0
        assert (tables / f"{name}_vs_published.csv").stat().st_size > 0
    table4 = pd.read_csv(tables / "table4.csv")
    assert len(table4.dropna(subset=["original_accuracy"])) == 12
    for name in ("findings.json", "findings_rq3.json", "findings_rq4.json", "faithfulness.json"):
        assert json.loads((tables / name).read_text())
    rq3 = json.loads((tables / "findings_rq3.json").read_text())
    assert set(rq3["variants"]) == {"study_code", "heatmap"} and "robustness" in rq3
    assert set(json.loads((tables / "findings_rq4.json").read_text())["readings"]) == {"lenient", "paper"}
    html = (study / "results/report/study.html").read_text()
    assert "Table V" in html and "data:image/png;base64" in html


def test_snakemake_report_of_the_finished_study(study, tmp_path):
    """`snakemake --report` as the README writes it, on the finished study: every report() output enters."""
    run = snakemake(study, "--report", str(tmp_path / "report.zip"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    assert any(n.endswith("study.html") for n in names) and any(n.endswith("table5.csv") for n in names), names[:20]


def test_report_only_rebuilds_without_training_or_inference(study):
    for folder in ("results/tables", "results/figures", "results/report"):
        shutil.rmtree(study / folder)
    dry = snakemake(study, "report_only", "--workflow-profile", str(ROOT / "profiles/report"), "-n")
    assert dry.returncode == 0, dry.stderr[-4000:]
    for rule in ("train_detector", "analyse_detector", "analyse_detector_rq4"):
        assert f"rule {rule}:" not in dry.stdout
    run = snakemake(study, "report_only", "--workflow-profile", str(ROOT / "profiles/report"))
    assert run.returncode == 0, run.stderr[-4000:]
    assert (study / "results/tables/table5.csv").is_file() and (study / "results/report/study.html").is_file()


def parts(study):
    return {(p.parent.name, p.stem): pd.read_csv(p, keep_default_na=False)
            for p in (study / "results/splits").glob("*/*.csv") if p.stem in ("train", "val", "test", "finetune")}


def test_official_test_videos_only_reach_test_sets(study):
    corpus = study / "results/corpus"
    test_ids = {f"ffpp:{i}" for pair in json.loads((corpus / "FaceForensics++/splits/test.json").read_text()) for i in pair}
    listed = {"celebdf_v2:" + line.split()[1].rsplit(".", 1)[0] for line in
              (corpus / "Celeb-DF-v2/List_of_testing_videos.txt").read_text().splitlines() if line.strip()}
    for (dataset, part), table in parts(study).items():
        if part == "test":
            continue
        ids = set().union(*(set(s.split("|")) for s in table["identities"]))
        assert not ids & test_ids, (dataset, part)
        assert not set(table["video_id"]) & listed, (dataset, part)


def test_same_identity_sets_are_training_identities_never_training_images(study):
    p = parts(study)
    train_ids = set().union(*(set(s.split("|")) for s in p[("F2F", "train")]["identities"]))
    used = set(pd.concat([p[("F2F", k)] for k in ("train", "val", "finetune")])["image_id"])
    for name in ("FS-I", "NT-I"):
        test = p[(name, "test")]
        ids = set().union(*(set(s.split("|")) for s in test["identities"]))
        assert ids <= train_ids, name
        assert not set(test["image_id"]) & used, name


def test_paper_config_on_mirror_trees_lists_the_whole_study(study, tmp_path):
    corpus = study / "results/corpus"
    roots = {"ffpp": corpus / "FaceForensics++", "dfd": corpus / "FaceForensics++",
             "celebdf_v2": corpus / "Celeb-DF-v2", "celebdf_v1": corpus / "Celeb-DF"}
    paper = (ROOT / "config/paper.yaml").read_text()
    for name, root in roots.items():
        paper = paper.replace({"ffpp": "/data/FaceForensics++", "dfd": "/data/FaceForensics++",
                               "celebdf_v2": "/data/Celeb-DF-v2", "celebdf_v1": "/data/Celeb-DF"}[name], str(root))
    (tmp_path / "paper.yaml").write_text(paper)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "config/config.yaml"), str(tmp_path / "paper.yaml"), "-n", "--cores", "2"]
    shutil.copytree(ROOT / "config", tmp_path / "config")
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    for rule, count in (("align_faces", 4 * 64), ("train_detector", 30), ("analyse_detector", 12),
                        ("analyse_detector_rq4", 18), ("render_report", 1)):
        assert any(line.split() == [rule, str(count)] for line in dry.stdout.splitlines()), (rule, dry.stdout[-3000:])


def test_a_short_split_stops_the_workflow_before_training(study, tmp_path):
    """The smoke study's faces, asked for more test images than they hold: make_splits fails and nothing is
    packed or trained; with splits.allow_short it goes on and the shortfall becomes an achieved-size deviation."""
    for folder in ("corpus", "videos", "faces"):
        shutil.copytree(study / "results" / folder, tmp_path / "results" / folder)  # copy2 keeps the mtimes
    shutil.copytree(ROOT / "config", tmp_path / "config")
    ask = tmp_path / "ask.yaml"
    ask.write_text("splits: {test: 400}\n")
    short = snakemake(tmp_path, "--rerun-triggers", "mtime", configfiles=[ask])
    assert short.returncode != 0, short.stdout[-3000:]
    log = (tmp_path / "results/logs/make_splits.log").read_text()
    assert "ShortSplitError" in log and "DFD/test: 400 images requested" in log and "lower splits.test" in log
    assert not (tmp_path / "results/models").exists() and not list((tmp_path / "results").rglob("*.npz"))

    ask.write_text("splits: {test: 400, allow_short: true}\n")
    allowed = snakemake(tmp_path, "results/splits/audit.csv", "--rerun-triggers", "mtime", configfiles=[ask])
    assert allowed.returncode == 0, allowed.stderr[-4000:]
    summary = pd.read_csv(tmp_path / "results/splits/summary.csv", keep_default_na=False)
    dfd = summary[(summary["dataset"] == "DFD") & (summary["part"] == "test")].iloc[0]
    assert int(dfd["actual"]) < 400 and "ran dry" in dfd["shortfall"]
    from dfstudy.report import deviations
    from test_config import study_config

    achieved = deviations(study_config(), summary).query("kind == 'achieved'").set_index("aspect")
    assert achieved.loc["DFD/test images", "here"] == f"{int(dfd['actual'])} of 400 configured"


def test_a_plugin_detector_and_a_folder_dataset_join_every_analysis(study, tmp_path, monkeypatch):
    """Extending the study without editing dfstudy: a toy architecture from a plugin module outside the
    package and a new unseen dataset given by config alone (``adapter: folder``) run through training,
    prediction, Grad-CAM, the causal analysis, Table V, Finding 1, Figure 3 and the report. Beyond the study
    in the same run: the domain-adversarial strategy (ToyNet7/8), the leave-one-out block and the comparison
    of approaches."""
    from test_registry import PLUGIN, PLUGIN_SOURCE

    for folder in ("corpus", "videos", "faces"):  # the smoke study's faces: only the new dataset's are extracted
        shutil.copytree(study / "results" / folder, tmp_path / "results" / folder)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    # the new dataset: a folder of real and fake videos (here the smoke corpus's DeepFakeDetection videos)
    dfd = tmp_path / "results/corpus/FaceForensics++"
    for label, videos in (("real", dfd / "original_sequences/actors/c23/videos"),
                          ("fake", dfd / "manipulated_sequences/DeepFakeDetection/c23/videos")):
        shutil.copytree(videos, tmp_path / "mine" / label)
    extension = tmp_path / "extension.yaml"
    extension.write_text(f"""
sources:
  mine: {{adapter: folder, root: {tmp_path / 'mine'}}}
datasets:
  MINE: {{source: mine, method: fake, role: unseen}}
detectors:
  plugins: [{PLUGIN}]
  architectures: [ToyNet]
  strategies: [original, transfer, merge, adversarial]
  learning_rate: {{ToyNet: 0.01}}
causal:
  architectures: [ToyNet]
loo:
  architectures: [ToyNet]
  train: 24
  val: 8
  test: 8
""")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
    run = snakemake(tmp_path, "--rerun-triggers", "mtime", configfiles=[extension])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-8000:]
    assert not list((tmp_path / "results/models").glob("*/MesoNet")), "only the configured architecture trains"

    tables = tmp_path / "results/tables"
    table5 = pd.read_csv(tables / "table5.csv")
    assert sorted(table5.detector) == [f"ToyNet{n}" for n in range(1, 9)]  # 7, 8: adversarial on CELEB, F2F
    assert table5.MINE.notna().all() and table5.MINE.between(0, 100).all()
    unseen = ["FS", "NT", "DF", "DFD", "MINE"]
    assert np.allclose(table5.average, table5[unseen].mean(axis=1))
    finding1 = json.loads((tables / "findings.json").read_text())["finding1"]
    assert finding1["numbers"]["unseen_sets"] == unseen and "MINE" in finding1["sentence"]
    assert finding1["numbers"]["n_detectors"] == 8
    ssim = pd.read_csv(tables / "rq3_ssim_heatmap.csv")  # Figure 3's table
    assert set(ssim.arch) == {"ToyNet"} and "MINE" in set(ssim.dataset)
    assert (tmp_path / "results/figures/fig3_ssim_heatmap.png").stat().st_size > 0
    assert len(list((tmp_path / "results/causal").glob("*/ToyNet/*/MINE.parquet"))) == 8
    html = (tmp_path / "results/report/study.html").read_text()
    assert "ToyNet4" in html and "MINE" in html

    # the adversarial fine-tune saw both domains of its training set's fine-tuning part, and kept a plain detector
    card = json.loads((tmp_path / "results/models/F2F/ToyNet/adversarial.json").read_text())
    domains = np.load(tmp_path / "results/splits/F2F/finetune.npz")["datasets"]
    assert card["target_domain_images"] == int((domains != "F2F").sum()) > 0
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison.strategy) == {"original", "transfer", "merge", "adversarial"}
    approach = dict(zip(comparison.strategy, comparison.approach))
    assert approach["merge"] == "ToyNet (beyond the study)" and "seed 001" in approach["adversarial"]
    summary = json.loads((tables / "comparison.json").read_text())
    assert "ToyNet" in summary["sentence"] and (tmp_path / "results/figures/comparison.png").stat().st_size > 0
    # leave-one-out: audited, one detector per held-out FF++ method, its table
    audit = pd.read_csv(tmp_path / "results/loo/splits/audit.csv")
    assert len(audit) == 4 and audit["ok"].all()
    loo = pd.read_csv(tables / "loo.csv")
    assert set(loo.heldout) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "mean"}
    assert loo.accuracy.between(0, 100).all()
    assert "Beyond the study: comparison of approaches" in html and "ToyNet8" in html
    deviations = pd.read_csv(tmp_path / "results/report/deviations.csv")
    assert deviations.aspect.str.contains("adversarial").any()

