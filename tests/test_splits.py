"""Splits: balanced, sized as configured, video- and identity-disjoint, deterministic; the audit catches leaks."""

import numpy as np
import pandas as pd
import pytest

from dfstudy.datasets import celebdf
from dfstudy.splits import (LeakageError, assign_video_splits, audit, make_splits, pack, planned_parts,
                            source_levels)
from test_datasets import touch

FRAMES = 10
SIZES = {"train": 40, "val": 10, "test": 20, "finetune_own": 10, "finetune_per_unseen": 6,
         "finetune_from": ["FS", "NT"], "val_share": 0.25}
SOURCES = {"ffpp": {"adapter": "faceforensics", "root": "x"}, "dfd": {"adapter": "dfd", "root": "x"},
           "celebdf_v2": {"adapter": "celebdf", "root": "x"},
           "celebdf_v1": {"adapter": "celebdf", "root": "x", "identity_namespace": "celebdf1"}}
DATASETS = {
    "CELEB": {"source": "celebdf_v2", "method": "Celeb-synthesis", "role": "train"},
    "F2F": {"source": "ffpp", "method": "Face2Face", "role": "train"},
    "FS": {"source": "ffpp", "method": "FaceSwap", "role": "unseen"},
    "NT": {"source": "ffpp", "method": "NeuralTextures", "role": "unseen"},
    "DF": {"source": "ffpp", "method": "Deepfakes", "role": "unseen"},
    "DFD": {"source": "dfd", "method": "DeepFakeDetection", "role": "unseen"},
    "CELEB-M": {"source": "celebdf_v1", "method": "Celeb-synthesis", "role": "specialised", "trainset": "CELEB", "disjoint": "video"},
    "FS-I": {"source": "ffpp", "method": "FaceSwap", "role": "same_identity", "trainset": "F2F", "disjoint": "image"},
    "NT-I": {"source": "ffpp", "method": "NeuralTextures", "role": "same_identity", "trainset": "F2F", "disjoint": "image"},
}
TRAINSETS = ["CELEB", "F2F"]


def faces(source, videos):
    """A face manifest with FRAMES ok crops per video; videos = (video_id, label, method, identities, split)."""
    rows = [{"source": source, "video_id": v, "path": "", "label": lab, "method": m, "identities": ids,
             "official_split": s, "image_id": f"{v}#{f}", "frame": f, "image_path": "", "status": "ok",
             "reason": "", "face_rule": "largest"}
            for v, lab, m, ids, s in videos for f in range(FRAMES)]
    return pd.DataFrame(rows)


def ffpp_manifest(pairs=(("train", 12), ("val", 3), ("test", 3))):
    videos, n = [], 0
    for split, count in pairs:
        for _ in range(count):
            a, b = f"{n:03d}", f"{n + 1:03d}"
            n += 2
            for x in (a, b):
                videos.append((f"ffpp:youtube/{x}", 0, "youtube", f"ffpp:{x}", split))
            for method in ("Face2Face", "FaceSwap", "NeuralTextures", "Deepfakes"):
                for t, s in ((a, b), (b, a)):
                    videos.append((f"ffpp:{method}/{t}_{s}", 1, method, f"ffpp:{t}|ffpp:{s}", split))
    return faces("ffpp", videos)


def celeb_manifest(source, namespace, identities=16, test_identities=4):
    videos = []
    for i in range(identities):
        split = "test" if i < test_identities else ""
        for j in range(3):
            videos.append((f"{source}:Celeb-real/id{i}_{j:04d}", 0, "Celeb-real", f"{namespace}:id{i}", split))
        k = (i + 1) % test_identities if i < test_identities else test_identities + (i + 1 - test_identities) % (identities - test_identities)
        for j in range(3):
            videos.append((f"{source}:Celeb-synthesis/id{i}_id{k}_{j:04d}", 1, "Celeb-synthesis",
                           f"{namespace}:id{i}|{namespace}:id{k}", split))
    videos += [(f"{source}:YouTube-real/{y:05d}", 0, "YouTube-real", "", "") for y in range(4)]
    return faces(source, videos)


def dfd_manifest():
    videos = [(f"dfd:actors/{a:02d}__scene", 0, "actors", f"dfd:{a:02d}", "test") for a in range(1, 7)]
    videos += [(f"dfd:DeepFakeDetection/{a:02d}_{a % 6 + 1:02d}__scene__X", 1, "DeepFakeDetection",
                f"dfd:{a:02d}|dfd:{a % 6 + 1:02d}", "test") for a in range(1, 7)]
    return faces("dfd", videos)


@pytest.fixture(scope="module")
def manifests():
    return {"ffpp": ffpp_manifest(), "dfd": dfd_manifest(),
            "celebdf_v2": celeb_manifest("celebdf_v2", "celebdf"),
            "celebdf_v1": celeb_manifest("celebdf_v1", "celebdf1", identities=6, test_identities=6)}


@pytest.fixture(scope="module")
def splits(manifests):
    return make_splits(manifests, SOURCES, DATASETS, TRAINSETS, SIZES, seed=7)


def ids(table):
    return set().union(*(set(filter(None, s.split("|"))) for s in table["identities"]))


def test_every_planned_part_is_made_balanced_and_sized(splits):
    parts, summary = splits
    assert set(parts) == set(planned_parts(DATASETS, TRAINSETS))
    for (dataset, part), table in parts.items():
        assert table["label"].sum() * 2 == len(table), (dataset, part)
        assert table["image_id"].is_unique
    for name in TRAINSETS:
        for part in ("train", "val", "test"):
            assert len(parts[(name, part)]) == SIZES[part], (name, part)
        assert len(parts[(name, "finetune")]) == SIZES["finetune_own"] + 2 * SIZES["finetune_per_unseen"]
    for name in ("FS", "NT", "DF", "DFD", "CELEB-M", "FS-I", "NT-I"):
        assert len(parts[(name, "test")]) == SIZES["test"], name
    assert (summary.dropna(subset=["videos"])["actual"] <= summary.dropna(subset=["videos"])["requested"]).all()


def test_train_val_test_are_video_and_identity_disjoint(splits):
    parts, _ = splits
    for name in TRAINSETS:
        train, val, test = (parts[(name, p)] for p in ("train", "val", "test"))
        assert not set(train["video_id"]) & set(test["video_id"])
        assert not set(val["video_id"]) & set(test["video_id"])
        assert not set(train["video_id"]) & set(val["video_id"])
        assert not ids(train) & ids(test)
        assert not ids(val) & ids(test)


def test_audit_passes_and_fails_on_a_planted_leak(splits):
    parts, _ = splits
    report = audit(parts, DATASETS, TRAINSETS)
    assert report["ok"].all()
    leaked = dict(parts)
    stolen = parts[("FS", "test")].iloc[:1]
    leaked[("F2F", "train")] = pd.concat([parts[("F2F", "train")], stolen])
    with pytest.raises(LeakageError, match="FS"):
        audit(leaked, DATASETS, TRAINSETS)


def test_same_identity_sets_use_training_identities_but_no_training_image(splits):
    parts, _ = splits
    seen = pd.concat([parts[("F2F", p)] for p in ("train", "finetune")])
    train_ids = ids(parts[("F2F", "train")])
    for name in ("FS-I", "NT-I"):
        test = parts[(name, "test")]
        assert ids(test) <= train_ids | ids(parts[("F2F", "finetune")])
        assert ids(test[test["label"] == 1]) & train_ids
        assert not set(test["image_id"]) & set(seen["image_id"])
        # the fakes come from pairs kept out of fine-tuning (reals are unused frames of training videos)
        fakes = test[test["label"] == 1]
        assert not set(fakes["video_id"]) & set(parts[("F2F", "finetune")]["video_id"])


def test_finetune_adds_unseen_training_images_and_new_own_images(splits):
    parts, _ = splits
    ft, train = parts[("CELEB", "finetune")], parts[("CELEB", "train")]
    assert not set(ft["image_id"]) & set(train["image_id"])
    sources = ft["video_id"].str.split(":").str[0].value_counts()
    assert sources["ffpp"] == 2 * SIZES["finetune_per_unseen"]
    fs_test = parts[("FS", "test")]
    assert not set(ft["video_id"]) & set(fs_test["video_id"])


def test_same_seed_gives_identical_lists_and_another_seed_differs(manifests, splits):
    again, _ = make_splits(manifests, SOURCES, DATASETS, TRAINSETS, SIZES, seed=7)
    other, _ = make_splits(manifests, SOURCES, DATASETS, TRAINSETS, SIZES, seed=8)
    first = splits[0]
    for key in first:
        assert first[key].to_csv(index=False) == again[key].to_csv(index=False)
    assert any(first[k].to_csv(index=False) != other[k].to_csv(index=False) for k in first)


def test_short_pool_shrinks_balanced(manifests):
    sizes = {**SIZES, "test": 1000}
    parts, summary = make_splits(manifests, SOURCES, DATASETS, TRAINSETS, sizes, seed=7)
    dfd = parts[("DFD", "test")]
    assert len(dfd) == 120 and dfd["label"].sum() * 2 == len(dfd)
    row = summary[(summary["dataset"] == "DFD") & (summary["part"] == "test")].iloc[0]
    assert row["requested"] == 1000 and row["actual"] == len(dfd)


def test_celeb_videos_mixing_test_identities_are_dropped():
    videos = pd.DataFrame({
        "source": "c", "video_id": ["a", "b", "c", "d"], "identities": ["c:id0", "c:id0|c:id1", "c:id1", "c:id2"],
        "official_split": ["test", "", "", ""], "label": [0, 1, 0, 0]})
    split, dropped = assign_video_splits(videos, val_share=0.5, seed=1)
    assert split[0] == "test" and split[1] == ""
    assert dropped["shares an identity with a test video"] == 1


def test_a_source_is_as_strict_as_its_strictest_dataset():
    assert source_levels(DATASETS) == {"celebdf_v2": "identity", "ffpp": "identity", "dfd": "identity",
                                       "celebdf_v1": "video"}  # FS-I and NT-I (image) do not loosen ffpp
    assert source_levels(with_celeb_level("video"))["celebdf_v2"] == "video"
    videos = pd.DataFrame({"source": "c", "video_id": ["a", "b"], "identities": ["c:id0", "c:id0"],
                           "official_split": ["test", ""], "label": [0, 0]})
    split, dropped = assign_video_splits(videos, val_share=0.5, seed=1, disjoint="video")
    assert list(split) == ["test", "train"] and dropped["shares an identity with a test video"] == 0


def with_celeb_level(level):
    return {**DATASETS, "CELEB": {**DATASETS["CELEB"], "disjoint": level}}


def real_celebdf_tree(root, celebrities=6, videos=3):
    """A Celeb-DF v2 tree shaped like the real one: every celebrity has videos in the test list and outside it."""
    listed = []
    for i in range(celebrities):
        for k in range(videos):
            for rel, real in ((f"Celeb-real/id{i}_{k:04d}.mp4", 1),
                              (f"Celeb-synthesis/id{i}_id{(i + 1) % celebrities}_{k:04d}.mp4", 0)):
                touch(root / rel)
                listed += [f"{real} {rel}"] if k == 0 else []
    for y in range(6):
        touch(root / f"YouTube-real/{y:05d}.mp4")
    (root / "List_of_testing_videos.txt").write_text("\n".join([*listed, "1 YouTube-real/00000.mp4"]) + "\n")
    return root


def real_celebdf_splits(tmp_path, level):
    """Splits with CELEB read from a real-shaped Celeb-DF tree (by its adapter), the other sources as above."""
    index = celebdf(real_celebdf_tree(tmp_path / "Celeb-DF-v2"), source="celebdf_v2")
    columns = ["video_id", "label", "method", "identities", "official_split"]
    manifests = {"ffpp": ffpp_manifest(), "dfd": dfd_manifest(),
                 "celebdf_v2": faces("celebdf_v2", index[columns].itertuples(index=False)),
                 "celebdf_v1": celeb_manifest("celebdf_v1", "celebdf1", identities=6, test_identities=6)}
    datasets = with_celeb_level(level)
    return index, datasets, *make_splits(manifests, SOURCES, datasets, TRAINSETS, SIZES, seed=7)


def test_celeb_video_level_trains_on_the_other_videos_of_test_list_celebrities(tmp_path):
    index, datasets, parts, summary = real_celebdf_splits(tmp_path, "video")
    listed = index[index["official_split"] == "test"]
    for part in ("train", "val", "finetune"):
        assert not set(parts[("CELEB", part)]["video_id"]) & set(listed["video_id"]), part
    train = parts[("CELEB", "train")]
    assert len(train) == SIZES["train"] and ids(train[train["label"] == 1]) & ids(listed)
    assert not summary["part"].str.startswith("celebdf_v2: shares an identity").any()
    assert set(summary.loc[summary["dataset"] == "CELEB", "disjoint"]) == {"video"}
    report = audit(parts, datasets, TRAINSETS)
    row = report[(report["trainset"] == "CELEB") & (report["test_set"] == "CELEB")].iloc[0]
    assert report["ok"].all() and row["disjoint"] == "video"
    assert row["videos"] == row["images"] == 0 and row["identities"] > 0  # people shared, videos not


def test_celeb_identity_level_drops_every_named_video_outside_the_test_list(tmp_path):
    index, datasets, parts, summary = real_celebdf_splits(tmp_path, "identity")
    listed = index[index["official_split"] == "test"]
    for part in ("train", "val", "finetune"):
        assert not ids(parts[("CELEB", part)]) & ids(listed), part
    # every celebrity is in the test list: only anonymous YouTube-real videos remain, so no fakes to train on
    assert len(parts[("CELEB", "train")]) == 0
    named_unlisted = (index["official_split"] == "") & (index["identities"] != "")
    dropped = summary.set_index("part").loc["celebdf_v2: shares an identity with a test video", "actual"]
    assert dropped == named_unlisted.sum() == 24
    assert audit(parts, datasets, TRAINSETS)["ok"].all()


def test_pack_decodes_pngs_to_uint8(tmp_path):
    import cv2

    paths = []
    for i in range(3):
        img = np.full((8, 8, 3), (10 * i, 20, 200), np.uint8)  # RGB
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    part = pd.DataFrame({"image_id": list("abc"), "video_id": list("xxy"), "identities": "", "label": [0, 1, 1],
                         "image_path": paths})
    arrays = pack(part)
    assert arrays["images"].dtype == np.uint8 and arrays["images"].shape == (3, 8, 8, 3)
    assert tuple(arrays["images"][2, 0, 0]) == (20, 20, 200)
    assert list(arrays["labels"]) == [0, 1, 1]
