"""The study's vocabulary from the config: names, roles and order."""

import pytest

from dfstudy.study import PAPER, Study
from test_config import study_config, write


def test_paper_names_round_trip_and_follow_the_paper():
    assert PAPER.detector_name("MesoNet", "F2F", "transfer") == "MesoNet5"
    assert PAPER.detector_name("XceptionNet", "CELEB", "original") == "XceptionNet1"
    assert [PAPER.parse_detector(PAPER.detector_name(*k)) for k in PAPER.detectors()] == PAPER.detectors()
    assert len(PAPER.detectors()) == 30
    assert PAPER.name_of_path("CELEB/MesoNet/merge") == "MesoNet3" and PAPER.name_of_path("x/y") == "x/y"
    with pytest.raises(ValueError, match="MesoNet7"):
        PAPER.parse_detector("MesoNet7")


def test_the_demo_config_is_the_papers_study():
    assert Study.from_config(study_config()) == PAPER


def test_a_dataset_and_a_training_set_added_in_config_join_the_study(tmp_path):
    extra = write(tmp_path / "extra.yaml", {
        "datasets": {"MY": {"source": "ffpp", "method": "FaceSwap", "role": "unseen"},
                     "DF-T": {"source": "ffpp", "method": "Deepfakes", "role": "train"}},
        "detectors": {"trainsets": ["CELEB", "F2F", "DF-T"], "strategies": ["original", "merge"]}})
    study = Study.from_config(study_config(extra))
    assert study.unseen == ("FS", "NT", "DF", "DFD", "MY") and study.role("MY") == "unseen"
    # a same-identity set pairs with the first unseen set of its source and method (MY is FaceSwap too)
    assert study.identity_pairs == {"FS-I": "FS", "NT-I": "NT"}
    # the paper's names stay; a third training set counts on, whatever strategies the run has
    assert study.detector_name("MesoNet", "F2F", "merge") == "MesoNet6"
    assert study.detector_name("MesoNet", "DF-T", "original") == "MesoNet7"
    assert study.parse_detector("ShallowNet9") == ("ShallowNet", "DF-T", "merge")
    assert Study.from_json(study.to_json()) == study


def test_a_fourth_strategy_numbers_after_the_studys_names():
    study = Study(strategies=("original", "transfer", "merge", "adversarial"))
    assert [study.detector_name("MesoNet", t, "adversarial") for t in study.trainsets] == ["MesoNet7", "MesoNet8"]
    assert study.detector_name("MesoNet", "F2F", "original") == "MesoNet4"


def test_table_order_is_the_papers_then_config_order():
    study = Study(architectures=("MesoNet", "Toy", "XceptionNet"))
    assert study.table_architectures == ("XceptionNet", "MesoNet", "Toy")
    assert study.evaluation_sets == ("CELEB", "F2F", "FS", "NT", "DF", "DFD", "CELEB-M", "FS-I", "NT-I")


def test_the_papers_sets_keep_their_order_whatever_order_the_config_merges():
    """Snakemake merges a --configfile before the Snakefile's configfile: a user's file naming MINE and DFD
    puts them first in config.datasets; the tables still read FS, NT, DF, DFD, then MINE."""
    config = study_config()
    mine = {"source": "dfd", "method": "DeepFakeDetection", "role": "unseen"}
    first = ["MINE", "DFD", "NT-I"]
    config["datasets"] = {"MINE": mine, **{n: config["datasets"][n] for n in first[1:]},
                          **{n: s for n, s in config["datasets"].items() if n not in first}}
    study = Study.from_config(config)
    assert study.unseen == ("FS", "NT", "DF", "DFD", "MINE")
    assert study.evaluation_sets == ("CELEB", "F2F", "FS", "NT", "DF", "DFD", "MINE", "CELEB-M", "FS-I", "NT-I")
