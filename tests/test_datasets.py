"""Adapters read the published directory layouts; config errors name the key and the path."""

import json

import pytest

from dfstudy.datasets import LayoutError, celebdf, dfd, faceforensics, folder, index_videos


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture
def ffpp_root(tmp_path):
    root = tmp_path / "FaceForensics++"
    pairs = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    for i in range(6):
        touch(root / f"original_sequences/youtube/c23/videos/{i:03d}.mp4")
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        for pair in sum(pairs.values(), []):
            for t, s in (pair, pair[::-1]):
                touch(root / f"manipulated_sequences/{method}/c23/videos/{t}_{s}.mp4")
    (root / "splits").mkdir()
    for split, p in pairs.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(p))
    touch(root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4")
    touch(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    return root


def test_faceforensics_reads_pairs_and_official_splits(ffpp_root):
    table = faceforensics(ffpp_root)
    assert len(table) == 6 + 4 * 6
    fake = table.set_index("video_id").loc["ffpp:FaceSwap/005_004"]
    assert (fake.label, fake.identities, fake.official_split) == (1, "ffpp:005|ffpp:004", "test")
    assert table.set_index("video_id").loc["ffpp:youtube/002", "official_split"] == "val"


def test_faceforensics_wrong_compression_names_the_path(ffpp_root):
    with pytest.raises(LayoutError, match="c40"):
        faceforensics(ffpp_root, compression="c40")


def test_dfd_is_all_test_with_actor_identities(ffpp_root):
    table = dfd(ffpp_root)
    assert set(table["official_split"]) == {"test"}
    assert table[table.label == 1].iloc[0]["identities"] == "dfd:01|dfd:02"


def test_celebdf_test_list_and_identities(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "YouTube-real/00000.mp4",
                "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4"):
        touch(root / rel)
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")
    table = celebdf(root).set_index("video_id")
    assert table.loc["celebdf:Celeb-real/id0_0000", "official_split"] == "test"
    assert table.loc["celebdf:Celeb-synthesis/id0_id1_0000", "official_split"] == ""
    assert table.loc["celebdf:Celeb-synthesis/id0_id1_0000", "identities"] == "celebdf:id0|celebdf:id1"
    assert table.loc["celebdf:YouTube-real/00000", "identities"] == ""
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id9_0000.mp4\n")
    with pytest.raises(LayoutError, match="absent"):
        celebdf(root)


def test_folder_adapter_and_missing_root(tmp_path):
    touch(tmp_path / "mine/real/a/x.mp4")
    touch(tmp_path / "mine/fake/y.avi")
    assert sorted(folder(tmp_path / "mine")["label"]) == [0, 1]
    with pytest.raises(LayoutError, match=r"sources\.mine\.root"):
        index_videos("mine", {"adapter": "folder", "root": str(tmp_path / "absent")})


def test_partial_download_fails_with_counts_unless_allowed(ffpp_root):
    (ffpp_root / "manipulated_sequences/FaceSwap/c23/videos/000_001.mp4").unlink()
    with pytest.raises(LayoutError, match=r"FaceSwap.*1 of 6 expected videos are absent.*allow_partial"):
        faceforensics(ffpp_root)
    table = faceforensics(ffpp_root, allow_partial=True)
    assert len(table[table.method == "FaceSwap"]) == 5


def test_split_file_naming_absent_originals_fails(ffpp_root):
    (ffpp_root / "original_sequences/youtube/c23/videos/004.mp4").unlink()
    with pytest.raises(LayoutError, match="youtube.*1 of 6"):
        faceforensics(ffpp_root)


def test_masks_are_found_without_compression_level(ffpp_root):
    touch(ffpp_root / "manipulated_sequences/Face2Face/masks/videos/000_001.mp4")
    table = faceforensics(ffpp_root).set_index("video_id")
    assert table.loc["ffpp:Face2Face/000_001", "mask_path"].endswith("Face2Face/masks/videos/000_001.mp4")
    assert table.loc["ffpp:Face2Face/001_000", "mask_path"] == ""
    assert table.loc["ffpp:youtube/000", "mask_path"] == ""
