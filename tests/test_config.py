"""Config: relative dataset paths start from the config file that sets them; --config and outputs do not."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from dfstudy.config import ConfigError, check_config, config_file_order, resolve_input_paths
from dfstudy.splits import source_levels
from test_datasets import ffpp_root  # noqa: F401 (fixture: a FaceForensics++ mirror tree with DFD)
from test_splits import real_celebdf_tree

ROOT = Path(__file__).resolve().parents[1]


def write(path, config):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def merged(*files):
    """The config Snakemake builds from these files, in merge order."""
    config = {}
    for f in files:
        update_config(config, yaml.safe_load(Path(f).read_text()))
    return config


def test_relative_paths_start_from_the_file_that_sets_them(tmp_path):
    base = write(tmp_path / "base/study.yaml", {"corpus": {"synthesize": False}, "sources": {
        "ffpp": {"adapter": "faceforensics", "root": "data/ffpp", "splits": "../splits"},
        "dfd": {"adapter": "dfd", "root": "/abs/FaceForensics++"}}})
    site = write(tmp_path / "site/paths.yaml", {"sources": {"ffpp": {"root": "../ffpp"}}})
    config = merged(base, site)
    resolve_input_paths(config, [base, site])
    ffpp = config["sources"]["ffpp"]
    assert ffpp["root"] == str(tmp_path / "ffpp")  # the later file set it
    assert ffpp["splits"] == str(tmp_path / "splits")  # only the first file sets it
    assert config["sources"]["dfd"]["root"] == "/abs/FaceForensics++"


def test_command_line_values_stay_relative_to_the_working_directory(tmp_path):
    base = write(tmp_path / "cfg/study.yaml", {"corpus": {"synthesize": False}, "sources": {
        "ffpp": {"adapter": "faceforensics", "root": "data/ffpp"},
        "dfd": {"adapter": "dfd", "root": "data/ffpp"}}})
    overrides = {"sources": {"ffpp": {"root": "data/ffpp"}, "dfd": {"root": "elsewhere"}}}
    config = merged(base)
    update_config(config, overrides)
    resolve_input_paths(config, [base], overrides)
    assert config["sources"]["ffpp"]["root"] == "data/ffpp"  # same text as the file's, still from --config
    assert config["sources"]["dfd"]["root"] == "elsewhere"
    # without being told about --config, a value that differs from every file's is still left alone
    config = merged(base)
    update_config(config, overrides)
    resolve_input_paths(config, [base])
    assert config["sources"]["dfd"]["root"] == "elsewhere"


def test_the_synthetic_corpus_is_an_output_and_stays_under_the_working_directory(tmp_path):
    sources = {"celebdf_v2": {"adapter": "celebdf", "root": "results/corpus/Celeb-DF-v2"}}
    demo = write(tmp_path / "cfg/demo.yaml", {"corpus": {"synthesize": True, "root": "results/corpus"},
                                             "sources": sources})
    config = merged(demo)
    resolve_input_paths(config, [demo])
    assert config["sources"]["celebdf_v2"]["root"] == "results/corpus/Celeb-DF-v2"
    config["corpus"]["synthesize"] = False  # nothing renders it: it is data the user brings
    resolve_input_paths(config, [demo])
    assert config["sources"]["celebdf_v2"]["root"] == str(tmp_path / "cfg/results/corpus/Celeb-DF-v2")


def test_config_files_in_merge_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = [tmp_path / "a.yaml", tmp_path / "b.yaml", "config/config.yaml"]  # as workflow.configfiles
    order = config_file_order(loaded, [tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert order == [tmp_path / "config/config.yaml", tmp_path / "a.yaml", tmp_path / "b.yaml"]
    assert config_file_order(["config/config.yaml"], []) == [tmp_path / "config/config.yaml"]


def study_config(*files):
    """config/config.yaml with ``files`` merged over it, validated (defaults filled) as common.smk does."""
    config = merged(ROOT / "config/config.yaml", *files)
    validate(config, schema=str(ROOT / "config/schema.yaml"))
    return config


def test_a_missing_root_names_the_key_and_the_resolved_path(tmp_path):
    mine = write(tmp_path / "cfg/mine.yaml", {"corpus": {"synthesize": False},
                                              "sources": {"celebdf_v2": {"root": "../Celeb-DF-v2"}}})
    config = study_config(mine)
    resolve_input_paths(config, [ROOT / "config/config.yaml", mine])
    with pytest.raises(ConfigError, match=re.escape(f"sources.ffpp.root: {ROOT}/config/results/corpus/FaceForensics")):
        check_config(config)
    config["sources"] = {"celebdf_v2": config["sources"]["celebdf_v2"]}
    config["datasets"] = {"CELEB": config["datasets"]["CELEB"]}
    config["splits"]["finetune_from"], config["detectors"]["trainsets"] = [], ["CELEB"]
    with pytest.raises(ConfigError, match=re.escape(f"sources.celebdf_v2.root: {tmp_path}/Celeb-DF-v2 does not exist")):
        check_config(config)


def test_celeb_is_video_disjoint_on_real_data_and_identity_disjoint_in_the_demo():
    demo, paper = study_config(), study_config(ROOT / "config/paper.yaml")
    assert demo["datasets"]["CELEB"]["disjoint"] == "identity"
    assert source_levels(demo["datasets"])["celebdf_v2"] == "identity"
    assert paper["datasets"]["CELEB"] == {**demo["datasets"]["CELEB"], "disjoint": "video"}
    assert source_levels(paper["datasets"]) == {**source_levels(demo["datasets"]), "celebdf_v2": "video"}


def dry_run(workdir, *args):
    """A dry run from ``workdir`` that prints the jobs' commands (index_videos shows each source's spec)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)


@pytest.mark.usefixtures("ffpp_root")  # writes tmp_path / "FaceForensics++"
def test_paper_config_next_to_its_data_runs_from_another_directory(tmp_path):
    # tmp_path holds the FF++ and Celeb-DF mirrors and the config, whose roots are relative to it
    real_celebdf_tree(tmp_path / "Celeb-DF-v2")
    real_celebdf_tree(tmp_path / "Celeb-DF")
    paper = (ROOT / "config/paper.yaml").read_text().replace("root: /data/", "root: ")
    (tmp_path / "paper.yaml").write_text(paper)
    workdir = tmp_path / "run"
    workdir.mkdir()
    targets = [f"results/videos/{s}.parquet" for s in ("ffpp", "dfd", "celebdf_v2", "celebdf_v1")]
    files = ["--configfile", str(ROOT / "config/config.yaml"), str(tmp_path / "paper.yaml")]
    dry = dry_run(workdir, *targets, *files)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    for root in (tmp_path / "FaceForensics++", tmp_path / "Celeb-DF-v2", tmp_path / "Celeb-DF"):
        assert f'"root": "{root}"' in dry.stdout, dry.stdout[-3000:]
    # the same relative path given with --config starts from the working directory, where it is absent
    dry = dry_run(workdir, *targets, *files, "--config", "sources={celebdf_v1: {root: Celeb-DF}}")
    log = dry.stdout + dry.stderr  # Snakemake prints the error to stdout
    assert dry.returncode != 0 and f"sources.celebdf_v1.root: {workdir}/Celeb-DF does not exist" in log, log[-3000:]


def test_training_commands_follow_the_per_architecture_settings(tmp_path):
    """The demo's ShallowNet trains longer than the rest, and the small networks recalibrate BN (the listed
    architectures only); paper.yaml undoes both."""
    archs = ("MesoNet", "ShallowNet", "XceptionNet")
    targets = [f"results/models/CELEB/{a}/original.keras" for a in archs]
    demo = dry_run(tmp_path, *targets, "--configfile", str(ROOT / "config/config.yaml"))
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    lines = demo.stdout.splitlines()
    commands = {a: next(line for line in lines if f"--arch {a} " in line) for a in archs}
    assert "--epochs 30 " in commands["MesoNet"] and "--epochs 60 " in commands["ShallowNet"]
    assert ["--recalibrate-bn" in commands[a] for a in archs] == [True, True, False]
    merged_paper = merged(ROOT / "config/config.yaml", ROOT / "config/paper.yaml")
    assert merged_paper["detectors"]["epochs_per_architecture"] is None
    assert merged_paper["detectors"]["recalibrate_bn"] is False


def test_a_method_its_source_lacks_fails_the_check_listing_the_methods():
    config = study_config()
    config["datasets"]["FS"] = {**config["datasets"]["FS"], "method": "FaceSwapp"}
    with pytest.raises(ConfigError, match=re.escape("datasets.FS.method: 'FaceSwapp' is not a method of source "
                                                    "'ffpp' (its methods: Deepfakes, Face2Face, FaceSwap, NeuralTextures)")):
        check_config(config)


def test_a_method_typo_stops_the_dry_run(tmp_path):
    bad = write(tmp_path / "typo.yaml", {"datasets": {"FS": {"source": "ffpp", "method": "FaceSwapp", "role": "unseen"}}})
    run = subprocess.run(["snakemake", "-n", "--configfile", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "datasets.FS.method: 'FaceSwapp'" in run.stdout + run.stderr


def test_per_architecture_settings_must_name_architectures(tmp_path):
    """A typo in an architecture name of any per-architecture setting fails the check, which lists the
    registered names; a run that trains fewer architectures keeps the demo's settings for the others (the
    smoke study does)."""
    for key, value in (("recalibrate_bn", ["ShallowNet", "ShalowNet"]), ("loss", {"MesoNett": "mean_squared_error"}),
                       ("epochs_per_architecture", {"Xception": {"original": 3}}),
                       ("learning_rate", {"EficientNet": 0.1}), ("transfer_layers", {"Meso": ["fake_prob"]}),
                       ("architectures", ["MesoNet", "ShalowNet"])):
        config = study_config(write(tmp_path / f"{key}.yaml", {"detectors": {key: value}}))
        with pytest.raises(ConfigError, match=rf"detectors.{key}: unknown architecture '\w+' \(registered: "
                                              "MesoNet, MesoInception, ShallowNet, XceptionNet, EfficientNet, LayerAggregation, "
                                              "PixelAnomaly, MidwayXception, LightXception"):
            check_config(config)
    narrowed = study_config(write(tmp_path / "narrow.yaml", {"detectors": {"architectures": ["XceptionNet"]}}))
    assert "MesoInception" in narrowed["detectors"]["recalibrate_bn"]
    check_config(narrowed)


def test_causal_architectures_need_a_registered_causal_layer(tmp_path):
    """causal.layers is gone: the registry's layer is used, and an architecture without one is refused."""
    config = study_config(write(tmp_path / "c.yaml", {"causal": {"architectures": ["MesoNet", "XceptionNet"]}}))
    with pytest.raises(ConfigError, match="causal.architectures: 'XceptionNet' has no causal analysis layer "
                                          r"\(architectures with one: MesoNet, MesoInception, ShallowNet, LayerAggregation, PixelAnomaly"):
        check_config(config)
    config = study_config(write(tmp_path / "t.yaml", {"causal": {"architectures": ["MesoNett"]}}))
    with pytest.raises(ConfigError, match="causal.architectures: unknown architecture 'MesoNett'"):
        check_config(config)
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="layers"):  # the old key is rejected, not silently ignored
        study_config(write(tmp_path / "old.yaml", {"causal": {"layers": {"MesoNet": "features"}}}))


def _schema_keys(props: dict, prefix: str = "") -> list[str]:
    """Dotted names of every named property of the schema, at every level (`<name>` for a free key)."""
    keys = []
    for key, spec in props.items():
        name = f"{prefix}{key}"
        keys.append(name)
        keys += _schema_keys(spec.get("properties", {}), f"{name}.")
        free = spec.get("additionalProperties")
        if isinstance(free, dict):
            keys += _schema_keys(free.get("properties", {}), f"{name}.<name>.")
    return keys


def test_every_schema_key_is_documented_in_config_readme():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    keys = _schema_keys(schema["properties"])
    assert {"seed", "detectors.epochs.original", "sources.<name>.adapter", "gradcam.faithfulness.fraction"} <= set(keys)
    readme = (ROOT / "config" / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \| [^|\s]", readme, flags=re.M))  # a row with a description
    documented |= set(re.findall(r"^## `([^`]+)`\n\n\w", readme, flags=re.M))  # a section with its paragraph
    assert not set(keys) - documented, f"add to config/README.md: {sorted(set(keys) - documented)}"
    assert not documented - set(keys), f"config/README.md documents keys the schema lacks: {sorted(documented - set(keys))}"
