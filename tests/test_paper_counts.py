"""config/paper.yaml at the real datasets' counts: every part reaches the study's size, nothing leaks.

The real downloads are gated, so their counts are simulated as face manifests: FaceForensics++ c23 (1,000
originals, official 360/70/70 pairs, four methods), DeepFakeDetection (363 originals, 3,068 fakes),
Celeb-DF v2 (590 Celeb-real, 300 YouTube-real, 5,639 fakes, a 518-video test list) and Celeb-DF v1 (408
real, 795 fakes, every one of them also a Celeb-DF v2 video, as far as the names go). Each video holds as
many faces as paper.yaml extracts from it: frames_per_training_video outside the official test split of
a training source, frames_per_video elsewhere.
"""

import numpy as np
import pandas as pd
import pytest

from dfstudy.splits import audit, make_splits, training_sources, video_key
from test_config import study_config, ROOT

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def manifest(source, videos, frames):
    """Face manifest: ``videos`` rows (video_id, label, method, identities, official_split), each with
    ``frames(split)`` ok crops."""
    table = pd.DataFrame(videos, columns=["video_id", "label", "method", "identities", "official_split"])
    counts = table["official_split"].map(frames).to_numpy()
    rows = table.loc[table.index.repeat(counts)].reset_index(drop=True)
    frame = rows.groupby("video_id", sort=False).cumcount()
    return rows.assign(source=source, image_id=rows["video_id"] + "#" + frame.astype(str), frame=frame,
                       image_path="", status="ok", reason="", face_rule="largest")


def ffpp_videos():
    ids = [f"{i:03d}" for i in range(1000)]
    pairs = [(ids[2 * i], ids[2 * i + 1]) for i in range(500)]
    split = ["train"] * 360 + ["val"] * 70 + ["test"] * 70
    videos = []
    for (a, b), s in zip(pairs, split):
        videos += [(f"ffpp:youtube/{x}", 0, "youtube", f"ffpp:{x}", s) for x in (a, b)]
        videos += [(f"ffpp:{m}/{t}_{u}", 1, m, f"ffpp:{t}|ffpp:{u}", s) for m in METHODS for t, u in ((a, b), (b, a))]
    return videos


def dfd_videos():
    actors = [f"{a:02d}" for a in range(1, 29)]
    videos = [(f"dfd:actors/{actors[i % 28]}__scene{i}", 0, "actors", f"dfd:{actors[i % 28]}", "test") for i in range(363)]
    videos += [(f"dfd:DeepFakeDetection/{actors[i % 28]}_{actors[(i + 1) % 28]}__scene{i}__X", 1, "DeepFakeDetection",
                f"dfd:{actors[i % 28]}|dfd:{actors[(i + 1) % 28]}", "test") for i in range(3068)]
    return videos


def celebdf_v2_videos():
    """59 celebrities with 10 Celeb-real videos each, 300 YouTube-real, 5,639 fakes; the test list holds
    videos of every celebrity (178 real: 118 Celeb-real and 60 YouTube-real; 340 fakes)."""
    real = [(f"Celeb-real/id{i}_{k:04d}", f"celebdf:id{i}") for i in range(59) for k in range(10)]
    youtube = [(f"YouTube-real/{y:05d}", "") for y in range(300)]
    fakes = [(f"Celeb-synthesis/id{i}_id{(i + 1 + k // 10) % 59}_{k % 10:04d}", f"celebdf:id{i}|celebdf:id{(i + 1 + k // 10) % 59}")
             for i in range(59) for k in range(96)][:5639]
    listed = {name for name, _ in real[::5]} | {name for name, _ in youtube[::5]} | {name for name, _ in fakes[::16][:340]}
    return [(f"celebdf_v2:{name}", int(name.startswith("Celeb-synthesis")), name.split("/")[0], ids,
             "test" if name in listed else "") for name, ids in real + youtube + fakes]


def celebdf_v1_videos(v2):
    """408 real (158 Celeb-real, 250 YouTube-real) and 795 fakes, all named as Celeb-DF v2 videos."""
    by_method = {m: [v for v in v2 if v[2] == m] for m in ("Celeb-real", "YouTube-real", "Celeb-synthesis")}
    chosen = by_method["Celeb-real"][:158] + by_method["YouTube-real"][:250] + by_method["Celeb-synthesis"][::7][:795]
    return [("celebdf_v1:" + vid.split(":", 1)[1], label, method, ids, "") for vid, label, method, ids, _ in chosen]


@pytest.fixture(scope="module")
def paper():
    config = study_config(ROOT / "config/paper.yaml")
    pre = config["preprocess"]
    feeding = training_sources(config["datasets"], config["detectors"]["trainsets"], config["splits"]["finetune_from"])

    def frames(source):
        training = pre["frames_per_training_video"] if source in feeding else pre["frames_per_video"]
        return lambda split: pre["frames_per_video"] if split == "test" else training

    v2 = celebdf_v2_videos()
    manifests = {"ffpp": manifest("ffpp", ffpp_videos(), frames("ffpp")),
                 "dfd": manifest("dfd", dfd_videos(), frames("dfd")),
                 "celebdf_v2": manifest("celebdf_v2", v2, frames("celebdf_v2")),
                 "celebdf_v1": manifest("celebdf_v1", celebdf_v1_videos(v2), frames("celebdf_v1"))}
    parts, summary = make_splits(manifests, config["sources"], config["datasets"], config["detectors"]["trainsets"],
                                 config["splits"], config["seed"])
    return config, manifests, parts, summary


def test_real_counts_are_those_of_the_downloads(paper):
    _, manifests, _, _ = paper
    videos = {s: m.drop_duplicates("video_id") for s, m in manifests.items()}
    assert videos["ffpp"]["label"].value_counts().to_dict() == {0: 1000, 1: 4000}
    assert videos["dfd"]["label"].value_counts().to_dict() == {0: 363, 1: 3068}
    assert videos["celebdf_v2"]["label"].value_counts().to_dict() == {0: 890, 1: 5639}
    assert (videos["celebdf_v2"]["official_split"] == "test").sum() == 518
    assert videos["celebdf_v1"]["label"].value_counts().to_dict() == {0: 408, 1: 795}


def test_every_part_of_every_dataset_reaches_the_study_size(paper):
    config, _, parts, summary = paper
    sizes = config["splits"]
    made = summary[summary["dataset"] != ""].set_index(["dataset", "part"])
    assert (made["actual"] == made["requested"]).all(), made[made["actual"] < made["requested"]]
    assert (made["shortfall"] == "").all()
    for name in config["detectors"]["trainsets"]:
        assert len(parts[(name, "train")]) == 16000 == sizes["train"]
        assert len(parts[(name, "val")]) == 2000
        assert len(parts[(name, "test")]) == 2000
        finetune = parts[(name, "finetune")]
        assert len(finetune) == 4000 and finetune["image_id"].is_unique
        own = finetune[finetune["video_id"].str.startswith(config["datasets"][name]["source"] + ":")]
        assert not set(finetune["image_id"]) & set(parts[(name, "train")]["image_id"])
        if name == "CELEB":  # FF++ fine-tuning images are all from other sources
            assert len(own) == 2000
        ft_val = parts[(name, "finetune_val")]
        assert len(ft_val) == 4000 and ft_val["image_id"].is_unique
    for name in ("FS", "NT", "DF", "DFD", "CELEB-M", "FS-I", "NT-I"):
        test = parts[(name, "test")]
        assert len(test) == 2000 and test["label"].sum() == 1000, name


def test_celeb_df_loses_no_video_to_identity_rules(paper):
    _, _, _, summary = paper
    dropped = summary[summary["dataset"] == ""]
    assert not dropped["part"].str.startswith("celebdf_v2").any(), dropped


def test_celeb_m_holds_no_video_that_celeb_learns_from_and_the_audit_passes(paper):
    config, manifests, parts, _ = paper
    sources = config["sources"]
    seen = pd.concat([parts[("CELEB", p)] for p in ("train", "val", "finetune", "finetune_val")])
    celeb_m = parts[("CELEB-M", "test")]
    assert not set(video_key(celeb_m["video_id"], sources)) & set(video_key(seen["video_id"], sources))
    # v1's videos outside v2's test list were reserved for CELEB-M, not merely left over
    v2 = manifests["celebdf_v2"].drop_duplicates("video_id").set_index("video_id")["official_split"]
    v2_split = ("celebdf_v2:" + celeb_m["video_id"].str.split(":", n=1).str[1]).map(v2)
    assert v2_split.notna().all() and (v2_split == "").any() and (v2_split == "test").any()
    report = audit(parts, config["datasets"], config["detectors"]["trainsets"], sources)
    assert report["ok"].all()
    assert report.set_index(["trainset", "test_set"]).loc[("CELEB", "CELEB-M"), "videos"] == 0
