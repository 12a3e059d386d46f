"""The study report: every table, figure and finding is in it, the HTML is self-contained, a changed
prediction reaches the tables, deviations follow the config, and (when Chromium is installed) the page
opens headless without console errors."""

import base64
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dfstudy import report as R
from dfstudy import comparison
from dfstudy import tables as T
from dfstudy.study import PAPER

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reports" / "reference"
TRAINSETS = {"CELEB": ["CELEB", "FS", "NT", "DF", "DFD", "CELEB-M"],
             "F2F": ["F2F", "FS", "NT", "DF", "DFD", "FS-I", "NT-I"]}
ARCH = "MesoNet"


def demo_config():
    """config/config.yaml with the schema defaults the workflow's validate() would fill in."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())

    def fill(node, sch):
        for key, spec in sch.get("properties", {}).items():
            if key not in node and "default" in spec:
                node[key] = copy.deepcopy(spec["default"])
            if isinstance(node.get(key), dict) and spec.get("type") == "object":
                fill(node[key], spec)

    fill(cfg, schema)
    return cfg


def paper_config():
    cfg = demo_config()

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(cfg, yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))


def write_predictions(root: Path, seed: int, n_videos: int = 8, per_video: int = 3):
    """Tiny prediction files for the six MesoNet detectors: own set easy, unseen sets near chance."""
    rng = np.random.default_rng(seed)
    for trainset, sets in TRAINSETS.items():
        for strategy in PAPER.strategies:
            folder = root / trainset / ARCH / strategy
            folder.mkdir(parents=True, exist_ok=True)
            for d in sets:
                labels = np.repeat(np.arange(n_videos) % 2, per_video)
                signal = 0.4 if d == trainset else 0.05
                score = np.clip(0.5 + signal * (2 * labels - 1) + rng.normal(0, 0.2, labels.size), 0, 1)
                pd.DataFrame({"image_id": [f"{d}:{i}" for i in range(labels.size)],
                              "video_id": [f"{d}:v{i // per_video}" for i in range(labels.size)],
                              "label": labels.astype("uint8"), "score": score.astype("float32")}
                             ).to_parquet(folder / f"{d}.parquet", index=False)


def make_tables(pred: Path, out: Path):
    files = sorted(map(str, pred.glob("*/*/*/*.parquet")))  # the files write_predictions wrote
    T.main(["--predictions", *files, "--reference", str(REF), "--out-dir", str(out), "--n-boot", "10",
            "--seed", "3", "--log-level", "WARNING"])
    # the comparison of approaches (beyond the study) from the same predictions, as rules/comparison.smk runs it
    comparison.main(["--predictions", *files, "--csv", str(out / "comparison.csv"), "--json",
                     str(out / "comparison.json"), "--figure", str(out.parent / "figures" / "comparison.png"),
                     "--n-boot", "10", "--seed", "3", "--log-level", "WARNING"])


def table_files(folder: Path) -> list[str]:
    return [*(str(folder / f"{n}{s}.csv") for n in R.TABLES for s in ("", "_vs_published")), str(folder / "cv_ap.csv"),
            str(folder / "rq3_faithfulness.csv"), str(folder / "comparison.csv")]


def findings_files(folder: Path) -> list[str]:
    return [str(folder / f"{s}.json") for s in ("findings", "findings_rq3", "findings_rq4", "faithfulness", "comparison")]


def write_png(path: Path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2400, 300), colour).save(path)  # wider than MAX_WIDTH: the report downscales it


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A fake results tree: tables and findings from real module code, figures, cards, manifests."""
    res = tmp_path_factory.mktemp("results")
    write_predictions(res / "predictions", seed=1)
    make_tables(res / "predictions", res / "tables")

    from dfstudy.faithfulness import summarize as faithfulness_table, verdict as faithfulness_verdict
    from dfstudy.similarity import finding3_variants

    rq3 = pd.DataFrame({"trainset": ["CELEB", "CELEB"], "arch": [ARCH, ARCH], "dataset": ["CELEB", "FS"],
                        "n": [10, 10], "share_lt07": [0.8, 0.6], "share_07_09": [0.1, 0.3],
                        "share_ge09": [0.1, 0.1], "mean_ssim": [0.5, 0.6]})
    (res / "tables" / "findings_rq3.json").write_text(json.dumps(finding3_variants(
        {"study_code": rq3, "heatmap": rq3.assign(share_lt07=[0.2, 0.3], share_ge09=[0.7, 0.6])})))
    deletion = pd.DataFrame({"detector": "CELEB/MesoNet/original", "dataset": "FS", "variant": "heatmap",
                             "image_id": ["a", "b"], "fraction": 0.1, "p_base": [0.9, 0.8],
                             "p_top": [0.5, 0.6], "p_random": [0.85, 0.8]})
    faithfulness_table(deletion).to_csv(res / "tables" / "rq3_faithfulness.csv", index=False)
    (res / "tables" / "faithfulness.json").write_text(json.dumps(faithfulness_verdict(faithfulness_table(deletion))))
    (res / "tables" / "findings_rq4.json").write_text(json.dumps(dict(
        finding=4, claim="Some neurons are top contributors on all five datasets.", verdict="partly supported",
        sentence="Finding 4 (some neurons are top ... datasets) is partly supported: RQ4-SENTENCE.")))

    figs = [res / "figures" / f for f in ("fig2_heatmaps_CELEB_heatmap.png", "fig2_heatmaps_F2F_heatmap.png",
                                           "fig3_ssim_study_code.png", "fig3_ssim_heatmap.png",
                                           "fig_faithfulness.png", f"fig5_{ARCH}.png")]
    for i, f in enumerate(figs):
        write_png(f, (40 * i, 100, 200))
    figs.append(res / "figures" / "comparison.png")  # drawn by make_tables' comparison

    cards = []
    for trainset in TRAINSETS:
        for strategy in PAPER.strategies:
            p = res / "models" / trainset / ARCH / f"{strategy}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(dict(architecture=ARCH, trainset=trainset, strategy=strategy, epochs=20,
                                         best_epoch=7, val_accuracy=0.9, trainable_params=12617,
                                         non_trainable_params=96, train_images=300, backend="tensorflow",
                                         keras_version="3.15.1", wall_time_s=8.5, image_size=64)))
            cards.append(p)

    manifests = []
    sources = {"ffpp": ["youtube", "Face2Face", "FaceSwap"], "celebdf_v2": ["Celeb-real", "Celeb-synthesis"]}
    for source, methods in sources.items():
        rows = []
        for m_i, method in enumerate(methods):
            for v in range(3):
                for f in range(2):
                    rows.append(dict(video_id=f"{source}:{method}/{v}", label=int(m_i > 0), method=method,
                                     frame=f, status="ok", reason=""))
        rows.append(dict(video_id=f"{source}:{methods[0]}/bad", label=0, method=methods[0], frame=-1,
                         status="skipped", reason="no face"))
        p = res / "faces" / source / "manifest.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(p, index=False)
        manifests.append(p)
    summary = res / "splits" / "summary.csv"
    summary.parent.mkdir(parents=True)
    summary.write_text("dataset,part,requested,actual,videos,fake\nCELEB,train,300,300,45.0,150.0\n"
                       "F2F,test,100,100,12.0,50.0\n,celebdf_v2: mixes train and val identities,0,19,,\n")
    bench = res / "benchmarks" / "train_detector" / "CELEB"
    bench.mkdir(parents=True)
    (bench / "x.tsv").write_text("s\th:m:s\tmax_rss\n16.95\t0:00:16\t1048.98\n")

    config = demo_config()
    argv = ["--config-json", json.dumps(config), "--tables", *table_files(res / "tables"),
            "--findings", *findings_files(res / "tables"), "--figures", *map(str, figs),
            "--manifests", *map(str, manifests), "--split-summary", str(summary), "--cards", *map(str, cards),
            "--benchmarks", str(bench / "x.tsv"), "--html", str(res / "report" / "study.html"),
            "--md", str(res / "report" / "study.md"), "--log-level", "WARNING",
            *(x for name in R.SETUP_TABLES for x in (f"--{name}-csv", str(res / "report" / f"{name}.csv")))]
    R.main(argv)
    return dict(root=res, argv=argv, config=config, html=(res / "report" / "study.html").read_text(),
                md=(res / "report" / "study.md").read_text())


# ------------------------------------------------------------------------------------------ contents


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.tables, self.imgs, self.refs = [], [], [], []
        self._rows = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self._rows = 0
        elif tag == "tr" and self._rows is not None:
            self._rows += 1
        elif tag == "img":
            self.imgs.append(a)
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            if key in a:
                self.refs.append((tag, key, a[key]))

    def handle_endtag(self, tag):
        if tag == "table":
            self.tables.append(self._rows)
            self._rows = None


def test_report_has_every_table_figure_and_finding(tree):
    html_text, md = tree["html"], tree["md"]
    for name in R.TABLES:
        assert T.TITLES[name] in html_text and T.TITLES[name] in md
    for title in ("Figure 2 (CELEB, heatmap)", "Figure 2 (F2F, heatmap)", "Figure 3 (study_code)",
                  "Figure 3 (heatmap)", "Grad-CAM deletion test", f"Figure 5 ({ARCH})"):
        assert title in html_text and title in md
    findings = json.loads((tree["root"] / "tables" / "findings.json").read_text())
    rq3 = json.loads((tree["root"] / "tables" / "findings_rq3.json").read_text())
    import html as H
    faith = json.loads((tree["root"] / "tables" / "faithfulness.json").read_text())
    assert rq3["robust"] is False and "depends on the Grad-CAM variant" in rq3["robustness"]
    for sentence in (findings["finding1"]["sentence"], findings["finding2"]["sentence"], rq3["sentence"],
                     "RQ4-SENTENCE", rq3["robustness"], rq3["variants"]["heatmap"]["sentence"], faith["sentence"]):
        assert H.escape(sentence) in html_text or sentence in html_text
        assert sentence in md
    assert "not computed" not in html_text
    assert R.config_hash(tree["config"]) in html_text and R.config_hash(tree["config"]) in md

    p = _Collect()
    p.feed(html_text)
    # setup tables (sources, datasets, detectors, benchmarks) + Tables IV-VII + CV of AP + deviations:
    # every one has a header and at least one data row
    assert len(p.tables) >= 10 and all(n >= 2 for n in p.tables)
    assert len(p.imgs) == 7  # Figures 2 (x2), 3 (x2), the deletion test, Figure 5, the comparison
    comparison_sentence = json.loads((tree["root"] / "tables" / "comparison.json").read_text())["sentence"]
    assert H.escape(comparison_sentence) in html_text and comparison_sentence in md
    for img in p.imgs:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100
        width = int.from_bytes(png[16:20], "big")
        assert width <= R.MAX_WIDTH


def test_setup_counts_and_paper_columns(tree):
    html_text = tree["html"]
    # skipped videos from the manifests, with their reason; the splitter's dropped videos
    assert "no face: 1" in html_text and "mixes train and val identities: 19 videos dropped" in html_text
    det = pd.read_csv(tree["root"] / "report" / "detectors.csv")
    assert len(det) == 6 and set(det.detector) == {f"{ARCH}{n}" for n in range(1, 7)}
    assert (det.trainable_params == 12617).all()
    src = pd.read_csv(tree["root"] / "report" / "sources.csv").set_index("source")
    assert src.loc["ffpp", "videos_with_faces"] == 9 and src.loc["ffpp", "skipped_videos"] == 1
    # Table V shows ours next to the published value (paper: MesoNet1 original accuracy 97.60)
    t5 = R.side_by_side(pd.read_csv(tree["root"] / "tables" / "table5.csv"),
                        pd.read_csv(tree["root"] / "tables" / "table5_vs_published.csv"))
    assert t5.set_index("detector").loc["MesoNet1", "original_accuracy | paper"] == pytest.approx(97.60)
    # published detectors we did not train appear, marked, after ours
    assert (t5.note == "paper only: not reproduced").sum() == 24
    assert "97.60" in html_text


def test_html_has_no_external_references(tree):
    p = _Collect()
    p.feed(tree["html"])
    assert not {"script", "link", "iframe", "object", "embed"} & set(p.tags)
    for tag, key, value in p.refs:
        assert value.startswith("data:") if key != "href" else value.startswith("#"), (tag, key, value[:60])
    assert not re.search(r"url\((?!data:)", tree["html"])
    assert "@import" not in tree["html"]


def test_changed_prediction_changes_table4_and_report(tree, tmp_path):
    make_tables(tree["root"] / "predictions", tmp_path / "a")
    pred = tmp_path / "predictions"
    shutil.copytree(tree["root"] / "predictions", pred)
    f = pred / "CELEB" / ARCH / "original" / "CELEB.parquet"
    p = pd.read_parquet(f)
    p["score"] = 1 - p["score"]  # the detector now gets its own test set wrong
    p.to_parquet(f, index=False)
    make_tables(pred, tmp_path / "b")
    a, b = (pd.read_csv(tmp_path / x / "table4.csv").set_index("detector") for x in "ab")
    assert not a.equals(b)
    assert a.loc["MesoNet1", "original_accuracy"] > 90 > b.loc["MesoNet1", "original_accuracy"]
    assert a.drop(index="MesoNet1")["original_accuracy"].equals(b.drop(index="MesoNet1")["original_accuracy"])

    argv = [a.replace(str(tree["root"] / "tables"), str(tmp_path / "b")) for a in tree["argv"]]
    outputs = [("--html", "b.html"), ("--md", "b.md"), *((f"--{n}-csv", f"{n}.csv") for n in R.SETUP_TABLES)]
    for opt, name in outputs:
        argv[argv.index(opt) + 1] = str(tmp_path / name)
    for name in ("findings_rq3.json", "findings_rq4.json", "faithfulness.json", "rq3_faithfulness.csv"):
        shutil.copy(tree["root"] / "tables" / name, tmp_path / "b" / name)
    R.main(argv)
    assert (tmp_path / "b.md").read_text() != tree["md"]


def test_report_is_deterministic(tree):
    """No timestamps: the Markdown twin diffs clean between two renderings of the same results."""
    again = tree["root"] / "again"  # same depth as report/, so the relative figure links match
    argv = list(tree["argv"])
    argv[argv.index("--md") + 1] = str(again / "study.md")
    argv[argv.index("--html") + 1] = str(again / "study.html")
    for name in R.SETUP_TABLES:
        argv[argv.index(f"--{name}-csv") + 1] = str(again / f"{name}.csv")
    R.main(argv)
    assert (again / "study.md").read_text() == tree["md"]
    assert (again / "study.html").read_text() == tree["html"]


def _html_structure(page: str) -> tuple[list[str], list[int]]:
    """Headings (h1-h3, in order) and the data rows of every table except the key-value list."""

    class Parse(HTMLParser):
        def __init__(self):
            super().__init__()
            self.headings, self.rows, self._heading, self._kv, self._body = [], [], None, False, False

        def handle_starttag(self, tag, attrs):
            if tag in ("h1", "h2", "h3"):
                self._heading = ""
            elif tag == "table":
                self._kv = ("class", "kv") in attrs
                if not self._kv:
                    self.rows.append(0)
            elif tag == "tbody":
                self._body = not self._kv
            elif tag == "tr" and self._body:
                self.rows[-1] += 1

        def handle_endtag(self, tag):
            if tag in ("h1", "h2", "h3"):
                self.headings.append(self._heading.strip())
                self._heading = None
            elif tag == "tbody":
                self._body = False

        def handle_data(self, data):
            if self._heading is not None:
                self._heading += data

    p = Parse()
    p.feed(page)
    return p.headings, p.rows


def _md_structure(text: str) -> tuple[list[str], list[int]]:
    """Headings (#, ##, ###) and the data rows of every pipe table (header and rule line not counted)."""
    headings = [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"#{1,3} ", line)]
    rows, run = [], 0
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            run += 1
        elif run:
            rows.append(run - 2)
            run = 0
    return headings, rows


def test_html_and_markdown_come_from_one_document(tree):
    """Same headings in the same order and the same tables with the same row counts in both files, and both
    are what the one document holds."""
    import html as H

    from dfstudy.document import Heading, Table

    html_headings, html_rows = _html_structure(tree["html"])
    md_headings, md_rows = _md_structure(tree["md"])
    assert [H.unescape(h) for h in html_headings] == md_headings
    assert html_rows == md_rows
    # the document the CLI rendered: its headings and tables, nothing more
    args = R._parser().parse_args(tree["argv"])
    doc = R.study_document(R.load(args))
    assert md_headings == [doc.title] + [b.text for b in doc.blocks if isinstance(b, Heading)]
    assert md_rows == [len(b.rows) for b in doc.blocks if isinstance(b, Table)]
    assert len(md_rows) >= 10 and min(md_rows) >= 1
    assert {"Findings", "Setup", "Compute per stage (Snakemake benchmarks)", "Reproduce"} <= set(md_headings)


def test_templates_come_from_the_folder_given(tree, tmp_path):
    """--templates is what the rule passes (reports/templates of the workflow, whatever --directory is)."""
    from dfstudy.document import TEMPLATES

    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "document.md.j2").write_text((folder / "document.md.j2").read_text() + "TEMPLATE-MARKER\n")
    argv = list(tree["argv"]) + ["--templates", str(folder)]
    argv[argv.index("--md") + 1] = str(tmp_path / "study.md")
    argv[argv.index("--html") + 1] = str(tmp_path / "study.html")
    for name in R.SETUP_TABLES:
        argv[argv.index(f"--{name}-csv") + 1] = str(tmp_path / f"{name}.csv")
    R.main(argv)
    assert (tmp_path / "study.md").read_text().endswith("TEMPLATE-MARKER\n")
    assert "TEMPLATE-MARKER" not in (tmp_path / "study.html").read_text()


def test_only_the_benchmark_files_given_are_read(tree, tmp_path):
    """A benchmark file left in results/benchmarks but not passed on the command line is not in the report."""
    stray = tree["root"] / "benchmarks" / "stray_rule" / "left_over.tsv"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("s\th:m:s\tmax_rss\n99999.5\t27:46:39\t12.0\n")
    argv = list(tree["argv"])
    outputs = [("--html", "study.html"), ("--md", "study.md"), *((f"--{n}-csv", f"{n}.csv") for n in R.SETUP_TABLES)]
    for opt, name in outputs:
        argv[argv.index(opt) + 1] = str(tmp_path / name)
    R.main(argv)
    page, text = (tmp_path / "study.html").read_text(), (tmp_path / "study.md").read_text()
    for out in (page, text):
        assert "train_detector" in out and "16.95" in out  # the file that was passed
        assert "stray_rule" not in out and "99,999" not in out and "100000" not in out
    passed = tree["root"] / "benchmarks" / "train_detector" / "CELEB" / "x.tsv"
    both = R.benchmark_summary([passed, stray]).set_index("rule")
    assert set(both.index) == {"train_detector", "stray_rule"} and both.loc["stray_rule", "wall_s"] == 99999.5
    assert list(R.benchmark_summary([passed]).rule) == ["train_detector"]


def test_benchmark_rule_from_the_rules_benchmark_paths():
    assert R.benchmark_rule("results/benchmarks/make_splits.tsv") == "make_splits"
    assert R.benchmark_rule("results/benchmarks/train_detector/CELEB/MesoNet/original.tsv") == "train_detector"
    assert R.benchmark_rule("/x/benchmarks/y/results/benchmarks/plot_ssim/heatmap.tsv") == "plot_ssim"


def test_report_follows_the_study():
    """Detector names, their order and the figure captions come from --study, not from the paper's names."""
    from dfstudy.study import PAPER, Study

    study = Study(trainsets=("F2F", "CELEB"), architectures=("MesoNet", "XceptionNet"), unseen=("FS", "NT"))
    cards = [dict(architecture=a, trainset=t, strategy=s) for a in ("MesoNet", "XceptionNet")
             for t in ("CELEB", "F2F") for s in ("merge", "original")]
    det = R.detector_summary(cards, study)
    # the paper's table order of architectures (XceptionNet first), then study numbers: F2F is now 1-3
    assert list(det.detector[:4]) == ["XceptionNet1", "XceptionNet3", "XceptionNet4", "XceptionNet6"]
    assert det.set_index("detector").loc["MesoNet1", "trainset"] == "F2F"
    assert R.detector_summary(cards).set_index("detector").loc["MesoNet1", "trainset"] == "CELEB"  # PAPER
    figs = R.figure_entries(["fig3_ssim_heatmap.png", "fig5_MesoNet.png"], study)
    assert "(its own, then FS, NT)" in figs[0]["caption"] and "all three" in figs[1]["caption"]
    paper = R.figure_entries(["fig5_MesoNet.png"])[0]["caption"]
    assert ", ".join(PAPER.unseen) in paper and "all five" in paper


def test_trainset_deviation_compares_with_the_papers():
    from dfstudy.study import PAPER

    cfg = demo_config()
    cfg["detectors"]["trainsets"] = ["F2F"]
    row = R.deviations(cfg).set_index("config").loc["detectors.trainsets"]
    assert row["study"] == ", ".join(PAPER.trainsets) and row["here"] == "F2F"
    assert "detectors.trainsets" not in set(R.deviations(demo_config()).config)


# ------------------------------------------------------------------------------------------ deviations


def test_deviations_follow_the_config():
    demo = R.deviations(demo_config())
    scale = demo[demo.kind == "scale"].set_index("config")
    cfg = demo_config()
    assert scale.loc["splits.train", "here"] == f"{cfg['splits']['train']:,}"
    assert scale.loc["splits.train", "study"] == "16,000"
    assert scale.loc["preprocess.face_size", "here"] == str(cfg["preprocess"]["face_size"])
    epochs = cfg["detectors"]["epochs"]["original"]
    assert scale.loc["detectors.epochs.original", "ratio"] == pytest.approx(epochs / 100)
    assert "data" in set(demo.kind)  # the synthetic corpus
    # the analyses cannot use more images than a test split holds: the effective number counts
    assert scale.loc["gradcam.images", "here"] == str(min(cfg["gradcam"]["images"], cfg["splits"]["test"] // 2))
    assert scale.loc["causal.samples", "here"] == str(min(cfg["causal"]["samples"], cfg["splits"]["test"]))
    cfg["splits"]["train"] = 1234
    assert R.deviations(cfg).set_index("config").loc["splits.train", "here"] == "1,234"


def test_paper_config_has_no_scale_deviations():
    """config/paper.yaml is the study at paper scale: PAPER_SCALE must agree with it key by key."""
    dev = R.deviations(paper_config())
    assert dev[dev.kind == "scale"].empty, dev[dev.kind == "scale"].to_string()
    assert "data" not in set(dev.kind)
    assert {"validation set", "causal effect", "transfer strategy"} <= set(dev.aspect)


def test_achieved_sizes_are_deviations_whatever_the_config_asked():
    """A paper-scale config with a short CELEB/train: the configured sizes match the study, the achieved do not."""
    splits = pd.DataFrame([
        {"dataset": "CELEB", "part": "train", "requested": 16000, "actual": 10380, "videos": 700, "fake": 5190},
        {"dataset": "F2F", "part": "train", "requested": 16000, "actual": 16000, "videos": 1440, "fake": 8000},
        {"dataset": "FS-I", "part": "test", "requested": 2000, "actual": 0, "videos": 0, "fake": 0},
        {"dataset": "", "part": "ffpp: mixes train and val identities", "requested": 0, "actual": 3}])
    dev = R.deviations(paper_config(), splits)
    achieved = dev[dev.kind == "achieved"].set_index("aspect")
    assert set(achieved.index) == {"CELEB/train images", "FS-I/test images"}
    assert achieved.loc["CELEB/train images", "study"] == "16,000"
    assert achieved.loc["CELEB/train images", "here"] == "10,380 of 16,000 configured"
    assert achieved.loc["FS-I/test images", "here"] == "0 of 2,000 configured"
    assert dev[dev.kind == "scale"].empty


def test_paper_config_lists_every_choice_the_paper_does_not_state():
    dev = R.deviations(paper_config())
    assert {"faces per training-side video", "frames without a face", "which face", "face detection",
            "BatchNormalization in transfer", "Celeb-DF v1 (CELEB-M)"} <= set(dev.aspect)
    here = dev.set_index("aspect")["here"]
    assert "20 evenly spaced frames" in here["faces per training-side video"] and "1.3x" in here["face detection"]


def test_config_hash_is_canonical():
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert R.config_hash(a) == R.config_hash(b) and len(R.config_hash(a)) == 64
    assert R.config_hash(a) != R.config_hash({**a, "b": 2})


# ------------------------------------------------------------------------------------------ browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def headless(url: str, *extra: str, timeout: int = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url],
            capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """Console messages and failed loads the page produced (Chromium's own startup noise is ignored)."""
    return [line for line in stderr.splitlines()
            if re.search(r":CONSOLE[:(]|Uncaught|Failed to load resource|net::ERR_", line)]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_console_errors_are_seen(tmp_path):
    """The check itself: a page with a console error and an uncaught exception is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom"); undefined_fn();</script></body></html>')
    errors = console_errors(headless(bad.as_uri(), "--dump-dom").stderr)
    assert any("boom" in e for e in errors) and any("undefined_fn" in e for e in errors)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_headless_without_console_errors(tree):
    url = (tree["root"] / "report" / "study.html").as_uri()
    res = headless(url, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Finding 4" in res.stdout and "Table VII" in res.stdout
    assert not console_errors(res.stderr), console_errors(res.stderr)


# ------------------------------------------------------------------------------------------ report_only

UPSTREAM = {"train_detector", "analyse_detector", "analyse_detector_rq4", "pack_split",
            "make_splits", "merge_faces", "align_faces", "index_videos", "synthesize_corpus"}


def _job_counts(out: str) -> dict[str, int]:
    counts, on = {}, False
    for line in out.splitlines():
        if line.startswith("Job stats"):
            on = True
        elif on and line.startswith("total"):
            break
        elif on and re.fullmatch(r"\S+\s+\d+", line.strip()):
            rule, n = line.split()
            counts[rule] = int(n)
    return counts


def test_report_only_never_schedules_training(tmp_path):
    """profiles/report: with models, predictions, heatmaps and rankings present (here: empty stand-ins)
    and every table and figure missing, the DAG holds only the summary, plotting and report rules."""
    from dfstudy.splits import evaluation_sets, planned_parts

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    archs = yaml.safe_load((ROOT / "tests" / "smoke.yaml").read_text())["detectors"]["architectures"]  # small DAG
    datasets = cfg["datasets"]
    unseen = [n for n, s in datasets.items() if s["role"] == "unseen"]
    causal = [a for a in ("MesoNet", "MesoInception", "ShallowNet") if a in archs]
    res = tmp_path / "results"
    paths = [res / "splits" / "summary.csv", res / "splits" / "audit.csv"]
    paths += [res / "faces" / s / "manifest.parquet" for s in cfg["sources"]]
    paths += [res / "splits" / d / "test.npz" for d in datasets]
    # a finished run left one benchmark file per job, and render_report declares those it reads
    bench = res / "benchmarks"
    paths += [bench / f"{r}.tsv" for r in ("synthesize_corpus", "make_splits", "audit_leakage")]
    paths += [bench / r / f"{s}.tsv" for r in ("index_videos", "merge_faces") for s in cfg["sources"]]
    shards = range(cfg["preprocess"]["shards"])
    paths += [bench / "align_faces" / s / f"{n}.tsv" for s in cfg["sources"] for n in shards]
    paths += [bench / "pack_split" / d / f"{p}.tsv" for d, p in planned_parts(datasets, ["CELEB", "F2F"])]
    dirs = []
    for t in ("CELEB", "F2F"):
        for a in archs:
            for s in PAPER.strategies:
                paths += [res / "models" / t / a / f"{s}.{x}" for x in ("keras", "json")]
                ran = ("train_detector", "analyse_detector_rq4" if a in causal else "analyse_detector")
                paths += [bench / r / t / a / f"{s}.tsv" for r in ran]
                dirs += [res / "predictions" / t / a / s, res / "gradcam" / t / a / s]
                paths += [res / "predictions" / t / a / s / f"{d}.parquet" for d in evaluation_sets(datasets, t)]
                paths += [res / "gradcam" / t / a / s / v / f"{d}.npz" for d in [t, *unseen]
                          for v in cfg["gradcam"]["variant"]]
                paths.append(res / "gradcam" / t / a / s / "faithfulness.csv")
                if a in causal:
                    dirs.append(res / "causal" / t / a / s)
                    paths += [res / "causal" / t / a / s / f"{d}.parquet" for d in [t, *unseen]]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    # the splits look newer than the models: mtime alone would retrain and re-predict everything
    for p in (res / "splits").rglob("*.npz"):
        p.touch()
    shutil.copytree(REF, tmp_path / "reports" / "reference")
    smoke = tmp_path / "archs.yaml"
    smoke.write_text(yaml.safe_dump({"detectors": {"architectures": archs}}))

    def dry_run(*extra):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(ROOT / "config" / "config.yaml"), str(smoke), "-n", "report_only", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    res_profile = dry_run("--workflow-profile", str(ROOT / "profiles" / "report"))
    assert res_profile.returncode == 0, res_profile.stdout[-3000:] + res_profile.stderr[-3000:]
    jobs = _job_counts(res_profile.stdout + res_profile.stderr)
    assert {"make_tables", "plot_ssim", "plot_heatmaps", "plot_neurons", "render_report"} <= set(jobs)
    assert not UPSTREAM & set(jobs), jobs

    plain = _job_counts((lambda r: r.stdout + r.stderr)(dry_run("--cores", "1")))
    assert "train_detector" in plain  # what the profile protects against

    shutil.rmtree(res / "predictions" / "F2F" / archs[0] / "merge")
    missing = dry_run("--workflow-profile", str(ROOT / "profiles" / "report"))
    assert missing.returncode != 0 and "MissingInputException" in missing.stdout + missing.stderr


def test_snakemake_report_needs_no_cores(tmp_path):
    """`snakemake --report report.html` as the README writes it (no --cores): no rule's threads read
    workflow.cores, so the report builds. Here on make_tables' outputs alone (stand-ins, newer than its inputs)."""
    archs = tmp_path / "archs.yaml"
    archs.write_text(yaml.safe_dump({"detectors": {"architectures": [ARCH]}}))
    shutil.copytree(REF, tmp_path / "reports" / "reference")
    for trainset in TRAINSETS:
        for strategy in PAPER.strategies:
            (tmp_path / "results" / "predictions" / trainset / ARCH / strategy).mkdir(parents=True)
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    for n in (4, 5, 6, 7):
        for suffix in (".csv", "_vs_published.csv"):
            (tables / f"table{n}{suffix}").write_text("detector,accuracy\nMesoNet1,50.0\n")
        for suffix in (".md", ".tex", "_vs_published.md"):
            (tables / f"table{n}{suffix}").write_text("stand-in\n")
    (tables / "cv_ap.csv").write_text("detector,cv_ap\nMesoNet1,0.1\n")
    (tables / "findings.json").write_text("{}\n")
    (tables / "metrics.parquet").touch()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "config" / "config.yaml"), str(archs), "--allowed-rules", "make_tables",
           "--report", "report.html", "results/tables/table4.csv"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "cores" not in run.stderr.lower()
    html = (tmp_path / "report.html").read_text()
    assert "table4.csv" in html and "findings.json" in html
    # the captions name the sets from the config: Table V's the unseen sets, Table IV's the detector numbers
    assert "unseen sets FS, NT, DF and DFD;" in html and "= F2F original / transfer / merge" in html
    assert "snakemake.params" not in html
