"""Beyond the study: the comparison of detector families (dfstudy.comparison), its rule and its report section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfstudy import comparison, metrics, tables
from dfstudy.study import Study

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
STUDY = Study(architectures=("MesoNet", "ShallowNet", "LayerAggregation"),
              strategies=("original", "transfer", "merge", "adversarial"), unseen=("FS", "NT", "DF"))
N_BOOT = 100


def _test_set(dataset: str, n_videos: int, skill: float, seed: int, frames: int = 4) -> pd.DataFrame:
    """Predictions on ``n_videos`` real and as many fake videos; ``skill`` 0 = chance, larger = better.

    The videos of a test set are the same whoever predicts them (ids from the dataset's name), as in the
    workflow; the scores differ by detector through ``seed``."""
    rng = np.random.default_rng(seed)
    label = np.repeat([0, 1], n_videos)
    video_effect = rng.normal(0, 1, label.size)
    rows = []
    for v, (y, e) in enumerate(zip(label, video_effect)):
        logit = skill * (2 * y - 1) + e + rng.normal(0, 0.7, frames)
        rows.append(pd.DataFrame(dict(image_id=[f"{dataset}:{v}:{f}" for f in range(frames)],
                                      video_id=f"{dataset}:{v:04d}", label=y, score=1 / (1 + np.exp(-logit)))))
    return pd.concat(rows, ignore_index=True)


def _predictions(good=("MesoNet", "merge"), n_videos: int = 20, study: Study = STUDY) -> dict:
    """Every detector of ``study`` on its own test set (skill 2.5) and the unseen sets (skill 2 for the
    ``good`` family, 0.3 for the others)."""
    out = {}
    for i, (arch, trainset, strategy) in enumerate(study.detectors()):
        for j, d in enumerate((trainset, *study.unseen)):
            skill = 2.5 if d == trainset else 2.0 if (arch, strategy) == good else 0.3
            out[(trainset, arch, strategy, d)] = _test_set(d, n_videos, skill, seed=100 * i + j)
    return out


@pytest.fixture(scope="module")
def ranked():
    return comparison.compare_families(_predictions(), N_BOOT, seed=7, study=STUDY)


def test_the_family_built_to_generalise_ranks_first_and_the_sentence_names_it(ranked):
    assert len(ranked) == len(STUDY.architectures) * len(STUDY.strategies)
    assert ranked.iloc[0].family == "MesoNet / merge"
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["unseen_accuracy"].is_monotonic_decreasing
    summary = comparison.sentence(ranked, STUDY)
    assert "MesoNet / merge" in summary["sentence"] and "the study" in summary["sentence"]
    # skill 2 against 0.3 on 4 x 2 x 30 videos per family: no other interval comes near
    assert summary["clear"] and summary["overlapping"] == [] and "clear of the intervals" in summary["sentence"]
    assert not ranked["overlaps_best"].iloc[1:].any()
    assert f"{ranked.iloc[0].unseen_accuracy:.2f} %" in summary["sentence"]


def test_degradation_is_original_minus_unseen_and_pools_both_training_sets(ranked):
    assert np.allclose(ranked.degradation, ranked.original_accuracy - ranked.unseen_accuracy)
    assert (ranked.trainsets == "CELEB+F2F").all() and (ranked.n_detectors == 2).all()
    assert (ranked.n_unseen == len(STUDY.unseen)).all()


def test_approach_names_the_extensions_and_the_study(ranked):
    by_family = ranked.set_index("family").approach
    assert by_family["MesoNet / transfer"] == "the study"
    assert "seed 000" in by_family["LayerAggregation / original"]
    assert by_family["ShallowNet / adversarial"] == "domain-adversarial fine-tuning (seed 001)"
    both = by_family["LayerAggregation / adversarial"]
    assert "seed 000" in both and "seed 001" in both
    # an architecture of a plugin (registered without a reference, or not registered here) is not the study's
    assert comparison.approach("ToyNet", "merge") == "ToyNet (beyond the study)"
    # several approaches: the sentence lists the best family of each
    assert "Best of each approach" in comparison.sentence(ranked, STUDY)["sentence"]


def test_a_close_race_is_not_called_clear():
    study = Study(architectures=("MesoNet", "ShallowNet"), strategies=("original",))
    preds = {k: v for k, v in _predictions(good=("none", ""), n_videos=15, study=study).items()}
    summary = comparison.sentence(comparison.compare_families(preds, N_BOOT, seed=3, study=study), study)
    assert summary["clear"] is False and "not clear of the intervals" in summary["sentence"]


def test_intervals_hold_the_estimates_and_narrow_with_more_videos():
    study = Study(architectures=("MesoNet",), strategies=("original",))
    widths = []
    for n in (15, 150):
        t = comparison.compare_families(_predictions(("MesoNet", "original"), n, study), N_BOOT, seed=1, study=study)
        for c in comparison.COLUMNS:
            assert t[f"{c}_lo"].iloc[0] <= t[c].iloc[0] <= t[f"{c}_hi"].iloc[0], c
        widths.append({c: t[f"{c}_hi"].iloc[0] - t[f"{c}_lo"].iloc[0] for c in comparison.COLUMNS})
    assert all(widths[1][c] < widths[0][c] for c in comparison.COLUMNS), widths


def test_same_seed_same_intervals_and_the_seed_matters():
    study = Study(architectures=("MesoNet",), strategies=("original",))
    preds = _predictions(("MesoNet", "original"), 15, study)
    a, b, c = (comparison.compare_families(preds, 100, seed=s, study=study) for s in (5, 5, 6))
    pd.testing.assert_frame_equal(a, b)
    assert a.unseen_accuracy_lo.iloc[0] != c.unseen_accuracy_lo.iloc[0]


def test_majority_vote_and_mean_score_rank_videos_differently():
    """Fake videos: one frame at 0.99 and three at 0.30 (mean 0.4725); real videos: one at 0.60 and three at
    0.10 (mean 0.225). Both hold one fake frame in four, so the vote cannot tell them apart (AUC 0.5, and
    no video is fake by majority), while the mean score separates them perfectly."""
    rows = []
    for v in range(20):
        fake = v % 2
        scores = [0.99, 0.30, 0.30, 0.30] if fake else [0.60, 0.10, 0.10, 0.10]
        rows += [dict(video_id=f"FS:{v:02d}", label=fake, score=s) for s in scores]
    unseen = pd.DataFrame(rows)
    mean_v = comparison.video_scores(unseen, "mean")
    vote_v = comparison.video_scores(unseen, "vote")
    assert np.allclose(mean_v.score[mean_v.label == 1], 0.4725) and (vote_v.score == 0.25).all()
    study = Study(architectures=("MesoNet",), strategies=("original",), trainsets=("CELEB",), unseen=("FS",),
                  specialised={}, same_identity={}, identity_pairs={})
    own = _test_set("CELEB", 10, 2.0, seed=0)
    t = comparison.compare_families({("CELEB", "MesoNet", "original", "CELEB"): own,
                                     ("CELEB", "MesoNet", "original", "FS"): unseen}, 50, seed=0, study=study)
    assert t.video_auc_mean.iloc[0] == 1.0 and t.video_auc_vote.iloc[0] == 0.5
    # the frame AUC sits in between: the 0.99 frames rank above every real frame, the 0.30 frames below one
    assert 0.5 < t.frame_auc.iloc[0] < 1.0


def test_vectorised_ap_replicates_equal_scikit_learn_on_the_same_resamples():
    """bootstrap_ci's vectorised AP against scikit-learn on the explicitly resampled rows (a callable metric
    with the same seed draws the same videos); ties in the scores included."""
    from sklearn.metrics import average_precision_score

    pred = _test_set("FS", 12, 0.8, seed=4).assign(score=lambda d: d.score.round(1))
    fast = metrics.bootstrap_ci(pred, "ap", 40, seed=9, replicates=True)
    slow = metrics.bootstrap_ci(pred, average_precision_score, 40, seed=9, replicates=True)
    assert np.allclose(fast["replicates"], slow["replicates"]) and fast["estimate"] == pytest.approx(slow["estimate"])


def test_cv_ap_equals_the_tables_and_the_command_writes_everything(tmp_path):
    study = Study(architectures=("MesoNet", "LayerAggregation"), strategies=("original", "adversarial"))
    paths = []
    for (trainset, arch, strategy, d), pred in _predictions(("LayerAggregation", "adversarial"), 12, study).items():
        p = tmp_path / "predictions" / trainset / arch / strategy / f"{d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        pred.to_parquet(p)
        paths.append(str(p))
    metrics = tables.collect_metrics(tables.prediction_table(paths, study), n_boot=10, seed=0, study=study)
    expected = tables.cv_ap(metrics, study).groupby(["architecture", "strategy"]).cv_ap.mean()

    out = tmp_path / "tables"
    comparison.main(["--predictions", *paths, "--csv", str(out / "comparison.csv"), "--json",
                     str(out / "comparison.json"), "--figure", str(tmp_path / "figures" / "comparison.png"),
                     "--n-boot", "50", "--seed", "1", "--study", study.to_json(), "--log-level", "WARNING"])
    table = pd.read_csv(out / "comparison.csv")
    got = table.set_index(["architecture", "strategy"]).cv_ap
    assert np.allclose(got.loc[expected.index], expected, atol=1e-4)  # the CSV keeps four decimals
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["best"]["family"] == "LayerAggregation / adversarial" == summary["ranking"][0]["family"]
    assert "Jevnisek" in summary["sentence"] and "domain-adversarial" in summary["sentence"]
    assert summary["sentence"] in (out / "comparison.md").read_text()
    from PIL import Image

    with Image.open(tmp_path / "figures" / "comparison.png") as im:
        assert im.width > 600 and im.height > 200


def test_the_figure_stays_readable_with_many_families(tmp_path):
    t = pd.DataFrame(dict(rank=range(1, 25), family=[f"Arch{i} / merge" for i in range(24)],
                          approach=["the study"] * 12 + ["an extension"] * 12,
                          original_accuracy=np.linspace(90, 70, 24), unseen_accuracy=np.linspace(80, 50, 24)))
    t["unseen_accuracy_lo"], t["unseen_accuracy_hi"] = t.unseen_accuracy - 3, t.unseen_accuracy + 3
    comparison.plot_comparison(t, tmp_path / "c.png")
    from PIL import Image

    with Image.open(tmp_path / "c.png") as im:
        assert im.height / 150 > 0.3 * 24  # at least 0.3 inch per family at 150 dpi


def test_the_rule_is_in_the_default_target(tmp_path):
    """A dry run of the default target (as tests/test_registry.py's, without importing Keras)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1",
           "--configfile", str(ROOT / "config/config.yaml")]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "rule compare_families:" in out
    lines = [line for line in out.splitlines() if "python -m dfstudy.comparison" in line]
    assert len(lines) == 1 and "--figure results/figures/comparison.png" in lines[0]
    report = [line for line in out.splitlines() if "python -m dfstudy.report" in line]
    assert "results/tables/comparison.csv" in report[0] and "results/figures/comparison.png" in report[0]


def test_the_report_renders_the_comparison_and_the_leave_one_out_table(ranked, tmp_path):
    from test_report import demo_config

    from dfstudy import report
    from dfstudy.document import render

    comparison.plot_comparison(ranked, tmp_path / "comparison.png")
    figures = report.figure_entries([tmp_path / "comparison.png"], STUDY)
    assert [f["rq"] for f in figures] == ["beyond"]
    for f in figures:
        f["data_uri"], f["link"] = "data:image/png;base64,", "../figures/comparison.png"
    summary = comparison.sentence(ranked, STUDY)
    loo = pd.DataFrame(dict(heldout=["FS", "NT"], architecture="MesoNet", accuracy=[61.5, 58.25],
                            accuracy_lo=[55.0, 52.0], accuracy_hi=[68.0, 64.5], frame_auc=[0.7, 0.66]))
    data = report.ReportData(config=demo_config(), study=STUDY, comparison=ranked, comparison_summary=summary,
                             figures=figures, loo=loo)
    doc = report.study_document(data)
    md, page = render(doc, "md"), render(doc, "html")
    section = md.split("## Beyond the study: comparison of approaches")[1].split("\n## ")[0]
    assert summary["sentence"] in section and "](../figures/comparison.png)" in section
    best = ranked.iloc[0]
    assert f"{best.unseen_accuracy:.2f} [{best.unseen_accuracy_lo:.2f}, {best.unseen_accuracy_hi:.2f}]" in section
    assert section.count("| MesoNet / ") == len(STUDY.strategies)
    assert "leave one method out" in section and "61.50 [55.00, 68.00]" in section and "| FS " in section
    assert 'href="#comparison"' in page and "Beyond the study: comparison of approaches" in page
    # without a leave-one-out table the section holds the comparison alone
    alone = render(report.study_document(report.ReportData(config=demo_config(), study=STUDY, comparison=ranked,
                                                           comparison_summary=summary)), "md")
    assert "leave one method out" not in alone and summary["sentence"] in alone
