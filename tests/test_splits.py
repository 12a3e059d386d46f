"""Splits: balanced, sized as configured, video- and identity-disjoint, deterministic; the audit catches leaks."""

import numpy as np
import pandas as pd
import pytest

from dfstudy.datasets import celebdf
from dfstudy.splits import (LeakageError, ShortSplitError, assign_video_splits, audit, make_splits, pack,
                            planned_parts, source_levels)
from test_datasets import touch

FRAMES = 10
SIZES = {"train": 40, "val": 10, "test": 20, "finetune_own": 10, "finetune_per_unseen": 6,
         "finetune_val_per_unseen": 4, "finetune_from": ["FS", "NT"], "val_share": 0.25}
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
    report = audit(parts, DATASETS, TRAINSETS, SOURCES)
    assert report["ok"].all()
    leaked = dict(parts)
    stolen = parts[("FS", "test")].iloc[:1]
    leaked[("F2F", "train")] = pd.concat([parts[("F2F", "train")], stolen])
    with pytest.raises(LeakageError, match="FS"):
        audit(leaked, DATASETS, TRAINSETS, SOURCES)


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


def test_a_short_part_stops_naming_the_pool_and_the_keys(manifests):
    sizes = {**SIZES, "test": 1000}
    with pytest.raises(ShortSplitError) as err:
        make_splits(manifests, SOURCES, DATASETS, TRAINSETS, sizes, seed=7)
    message = str(err.value)
    assert "DFD/test: 1,000 images requested, 120 achieved" in message
    assert "real images (60 in the pool)" in message and "raise preprocess.frames_per_video or lower splits.test" in message
    assert "FS-I/test" in message and "preprocess.frames_per_training_video" in message  # reals of training videos
    assert "splits.allow_short" in message


def test_allow_short_shrinks_balanced_and_records_the_shortfall(manifests):
    sizes = {**SIZES, "test": 1000, "allow_short": True}
    parts, summary = make_splits(manifests, SOURCES, DATASETS, TRAINSETS, sizes, seed=7)
    dfd = parts[("DFD", "test")]
    assert len(dfd) == 120 and dfd["label"].sum() * 2 == len(dfd)
    row = summary[(summary["dataset"] == "DFD") & (summary["part"] == "test")].iloc[0]
    assert row["requested"] == 1000 and row["actual"] == len(dfd) and "ran dry" in row["shortfall"]
    met = summary[(summary["dataset"] == "CELEB") & (summary["part"] == "train")].iloc[0]
    assert met["actual"] == met["requested"] and met["shortfall"] == ""


def test_an_empty_part_stops_even_when_short_parts_are_allowed(manifests):
    sizes = {**SIZES, "test": 1000, "allow_short": True}
    manifests = {**manifests, "dfd": manifests["dfd"][manifests["dfd"]["label"] == 0]}
    with pytest.raises(ShortSplitError, match=r"empty: DFD/test"):
        make_splits(manifests, SOURCES, DATASETS, TRAINSETS, sizes, seed=7)


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
    assert list(split) == ["test", "train"] and not any(dropped.values())


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
    report = audit(parts, datasets, TRAINSETS, SOURCES)
    row = report[(report["trainset"] == "CELEB") & (report["test_set"] == "CELEB")].iloc[0]
    assert report["ok"].all() and row["disjoint"] == "video"
    assert row["videos"] == row["images"] == 0 and row["identities"] > 0  # people shared, videos not


def test_celeb_identity_level_drops_every_named_video_outside_the_test_list(tmp_path):
    index = celebdf(real_celebdf_tree(tmp_path / "Celeb-DF-v2"), source="celebdf_v2")
    split, dropped = assign_video_splits(index, val_share=0.25, seed=7, disjoint="identity")
    named_unlisted = (index["official_split"] == "") & (index["identities"] != "")
    assert dropped["shares an identity with a test video"] == named_unlisted.sum() == 24
    assert not (split[named_unlisted] != "").any()
    # every celebrity is in the test list: only anonymous YouTube-real videos remain, so no fakes to train on
    with pytest.raises(ShortSplitError, match=r"empty: .*CELEB/train"):
        real_celebdf_splits(tmp_path, "identity")


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


# Celeb-DF v1 re-uses v2's videos: with one namespace, v1's id0_0000 is v2's id0_0000
SHARED = {**SOURCES, "celebdf_v1": {"adapter": "celebdf", "root": "x", "identity_namespace": "celebdf"}}


@pytest.fixture(scope="module")
def shared_splits(manifests):
    """Celeb-DF v1 as copies of v2's videos of people 4-9, all outside v2's test list (people 0-3)."""
    v2 = manifests["celebdf_v2"]
    people = v2["identities"].map(lambda s: bool(s) and all(int(i.split(":id")[1]) in range(4, 10) for i in s.split("|")))
    v1 = v2[people].copy()
    for column in ("video_id", "image_id"):
        v1[column] = v1[column].str.replace("celebdf_v2:", "celebdf_v1:")
    v1["source"] = "celebdf_v1"
    return make_splits({**manifests, "celebdf_v1": v1}, SHARED, DATASETS, TRAINSETS, SIZES, seed=7)


def names(table):
    return set(table["video_id"].str.split(":", n=1).str[1])


def test_celeb_m_reserves_shared_videos_and_celeb_never_sees_them(shared_splits, manifests):
    parts, _ = shared_splits
    celeb_m = parts[("CELEB-M", "test")]
    seen = pd.concat([parts[("CELEB", p)] for p in ("train", "val", "finetune", "finetune_val")])
    assert len(celeb_m) == SIZES["test"]
    assert not names(celeb_m) & names(seen)
    # every v1 video is one v2 trains on unless it is reserved for CELEB-M
    assert names(celeb_m) <= names(manifests["celebdf_v2"])
    assert audit(parts, DATASETS, TRAINSETS, SHARED)["ok"].all()


def with_rows(parts, key, rows):
    return {**parts, key: pd.concat([parts[key], rows], ignore_index=True)}


def test_audit_sees_the_same_video_under_two_sources(shared_splits):
    parts, _ = shared_splits
    celeb_m = parts[("CELEB-M", "test")]
    row = celeb_m[celeb_m["video_id"].str.contains("Celeb-real/")].iloc[:1]  # a v2 training-side video, reserved
    name = row["video_id"].iloc[0].split(":", 1)[1]
    twin = row.assign(video_id=f"celebdf_v2:{name}", image_id=f"celebdf_v2:{name}#99")  # v2's copy, another frame
    with pytest.raises(LeakageError) as err:
        audit(with_rows(parts, ("CELEB", "train"), twin), DATASETS, TRAINSETS, SHARED)
    rows = str(err.value).splitlines()[2:]
    assert len(rows) == 1 and rows[0].split()[:2] == ["CELEB", "CELEB-M"]  # a video-only leak, across sources


def test_audit_catches_an_identity_only_leak(splits):
    parts, _ = splits
    person = sorted(ids(parts[("FS", "test")]))[0]
    stranger = pd.DataFrame([{"image_id": "ffpp:youtube/new#0", "video_id": "ffpp:youtube/new",
                              "identities": person, "label": 0, "image_path": ""}])
    with pytest.raises(LeakageError) as err:
        audit(with_rows(parts, ("F2F", "train"), stranger), DATASETS, TRAINSETS, SOURCES)
    bad = str(err.value)
    assert "FS " in bad or "FS\n" in bad or " FS " in bad
    assert "FS-I" not in bad and "NT-I" not in bad  # image-level sets allow shared people


def test_audit_catches_a_val_video_in_train(splits):
    parts, _ = splits
    row = parts[("CELEB", "val")].iloc[:1]
    again = row.assign(image_id=row["image_id"] + "x")
    with pytest.raises(LeakageError, match=r"CELEB \(val vs train\)"):
        audit(with_rows(parts, ("CELEB", "train"), again), DATASETS, TRAINSETS, SOURCES)


def test_finetune_validation_adds_each_finetune_sets_validation_videos(splits, manifests):
    parts, _ = splits
    ffpp = manifests["ffpp"].drop_duplicates("video_id").set_index("video_id")["official_split"]
    for name in TRAINSETS:
        ft_val, val = parts[(name, "finetune_val")], parts[(name, "val")]
        assert ft_val["image_id"].is_unique and set(val["image_id"]) <= set(ft_val["image_id"])
        extra = ft_val[~ft_val["image_id"].isin(val["image_id"])]
        assert len(extra) == 2 * SIZES["finetune_val_per_unseen"] and extra["label"].sum() * 2 == len(extra)
        assert (extra["video_id"].map(ffpp) == "val").all()
        methods = extra.loc[extra["label"] == 1, "video_id"].str.split("[:/]", regex=True).str[1]
        assert set(methods) == {"FaceSwap", "NeuralTextures"}


def test_a_folder_of_ones_own_videos_is_a_test_set(manifests):
    """A source no detector learns from and without an official split (adapter ``folder``): every video may
    give test images; a training set on such a source has no test videos and stops the run, naming the part."""
    mine = faces("mine", [(f"mine:{kind}/{i}", label, kind, "", "") for label, kind in ((0, "real"), (1, "fake"))
                          for i in range(2)])
    sources = {**SOURCES, "mine": {"adapter": "folder", "root": "x"}}
    datasets = {**DATASETS, "MINE": {"source": "mine", "method": "fake", "role": "unseen"}}
    parts, _ = make_splits({**manifests, "mine": mine}, sources, datasets, TRAINSETS, SIZES, seed=7)
    test = parts[("MINE", "test")]
    assert len(test) == SIZES["test"] and test["label"].sum() * 2 == len(test)
    assert audit(parts, datasets, TRAINSETS, sources)["ok"].all()
    assert parts[("FS", "test")].equals(make_splits(manifests, SOURCES, DATASETS, TRAINSETS, SIZES, seed=7)[0][("FS", "test")])

    datasets["MINE"]["role"] = "train"
    with pytest.raises(ShortSplitError, match="MINE/test: 20 images requested, 0 achieved"):
        make_splits({**manifests, "mine": mine}, sources, datasets, [*TRAINSETS, "MINE"], SIZES, seed=7)
