"""Tests of the embedded synthetic corpus (dfstudy.synth) on a tiny spec (a few seconds)."""

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from dfstudy import synth

TINY = {
    "frame_size": [128, 128],
    "frames_per_video": 6,
    "fps": 10,
    "ffpp": {"pairs": {"train": 1, "val": 0, "test": 1}},
    "dfd": {"actors": 2, "scenes": ["exit_phone_room"], "fakes": 2},
    "celebdf_v2": {"identities": 4, "videos_per_identity": 1, "youtube_real": 2, "fakes": 4,
                   "test_identities": 2, "broken": True},
    "celebdf_v1": {"identities": 2, "videos_per_identity": 1, "youtube_real": 0, "fakes": 2,
                   "test_identities": 2},
}
SEED = 1234
FF = "FaceForensics++"
ORIG = f"{FF}/original_sequences/youtube/c23/videos"
MANIP = f"{FF}/manipulated_sequences"


def _run(out: Path, seed: int, threads: int, spec=TINY) -> Path:
    synth.main(["--out", str(out), "--spec-json", json.dumps(spec), "--seed", str(seed),
                "--threads", str(threads), "--log-level", "WARNING"])
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("c2") / "corpus", SEED, threads=2)


@pytest.fixture(scope="module")
def table(corpus) -> pd.DataFrame:
    return pd.read_csv(corpus / "corpus.csv", keep_default_na=False)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _frames(p: Path) -> list:
    cap = cv2.VideoCapture(str(p))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _videos(root: Path) -> set:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}


# ---------------------------------------------------------------------------------------------

def test_ffpp_layout_and_splits(corpus, table):
    splits = {s: json.loads((corpus / FF / "splits" / f"{s}.json").read_text())
              for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1, 0, 1]
    ids = [v for s in splits.values() for pair in s for v in pair]
    assert sorted(ids) == ["000", "001", "002", "003"]  # each original in exactly one pair
    assert all(isinstance(v, str) and re.fullmatch(r"\d{3}", v) for v in ids)
    expected = {f"{ORIG}/{v}.mp4" for v in ids}
    for pair in (p for s in splits.values() for p in s):
        a, b = pair
        for t, s in ((a, b), (b, a)):
            for m in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
                expected.add(f"{MANIP}/{m}/c23/videos/{t}_{s}.mp4")
    got = {v for v in _videos(corpus) if v.startswith(ORIG) or
           (v.startswith(MANIP) and "/DeepFakeDetection/" not in v)}
    assert got == expected
    ff = table[table.source == "ffpp"]
    assert set(ff.relpath) == expected
    split_of = {v: s for s, pl in splits.items() for p in pl for v in p}
    for row in ff.itertuples():
        name = Path(row.relpath).stem
        assert row.split == split_of[name.split("_")[0]]
        assert row.label == (0 if row.relpath.startswith(ORIG) else 1)
        assert row.identities == "|".join(f"ffpp:{x}" for x in name.split("_"))


def test_dfd_layout(corpus, table):
    reals = {p for p in _videos(corpus) if "/actors/" in p}
    assert reals == {f"{FF}/original_sequences/actors/c23/videos/{a}__exit_phone_room.mp4"
                     for a in ("01", "02")}
    fakes = sorted(p for p in _videos(corpus) if "/DeepFakeDetection/" in p)
    assert len(fakes) == 2
    for p in fakes:
        m = re.fullmatch(rf"{re.escape(MANIP)}/DeepFakeDetection/c23/videos/"
                         r"(\d\d)_(\d\d)__exit_phone_room__([A-Z0-9]{8})\.mp4", p)
        assert m and m.group(1) != m.group(2)
        row = table[table.relpath == p].iloc[0]
        assert row.identities == f"dfd:{m.group(1)}|dfd:{m.group(2)}" and row.label == 1


@pytest.mark.parametrize("root,ns,n_id,n_yt,broken", [("Celeb-DF-v2", "celebdf", 4, 2, True),
                                                      ("Celeb-DF", "celebdf1", 2, 0, False)])
def test_celeb_layout_and_test_list(corpus, table, root, ns, n_id, n_yt, broken):
    files = {p[len(root) + 1:] for p in _videos(corpus) if p.startswith(root + "/")}
    assert {p for p in files if p.startswith("Celeb-real/")} == \
        {f"Celeb-real/id{i}_0000.mp4" for i in range(n_id)}
    n_broken = 3 if broken else 0
    assert {p for p in files if p.startswith("YouTube-real/")} == \
        {f"YouTube-real/{k:05d}.mp4" for k in range(n_yt + n_broken)}
    synth_files = [p for p in files if p.startswith("Celeb-synthesis/")]
    assert len(synth_files) == TINY["celebdf_v2" if broken else "celebdf_v1"]["fakes"]
    for p in synth_files:
        m = re.fullmatch(r"Celeb-synthesis/id(\d+)_id(\d+)_(\d{4})\.mp4", p)
        assert m and m.group(1) != m.group(2)
        assert f"Celeb-real/id{m.group(1)}_{m.group(3)}.mp4" in files  # made from this target

    lines = (corpus / root / "List_of_testing_videos.txt").read_text().splitlines()
    listed = {}
    for line in lines:
        m = re.fullmatch(r"([01]) ((Celeb-real|Celeb-synthesis|YouTube-real)/\S+\.mp4)", line)
        assert m, line
        assert (corpus / root / m.group(2)).is_file()
        assert int(m.group(1)) == (0 if m.group(3) == "Celeb-synthesis" else 1)  # 1 = REAL here
        listed[m.group(2)] = m.group(1)
    assert any(p.startswith("YouTube-real/") for p in listed) == (n_yt > 0)

    def people(p):
        return set(re.findall(r"id(\d+)", Path(p).name))
    test_ids = set().union(*(people(p) for p in listed))
    other_ids = set().union(*(people(p) for p in files if p not in listed))
    assert len(test_ids) == TINY["celebdf_v2" if broken else "celebdf_v1"]["test_identities"]
    assert not (test_ids & other_ids)

    sub = table[table.relpath.str.startswith(root + "/")]
    assert set(sub.relpath) == {f"{root}/{p}" for p in files}
    assert set(sub[sub.split == "test"].relpath) == {f"{root}/{p}" for p in listed}
    for row in sub.itertuples():
        assert all(x.startswith(f"{ns}:") for x in row.identities.split("|") if x)
    assert set(sub[sub.defect != ""].relpath).isdisjoint(f"{root}/{p}" for p in listed)


def test_corpus_table_matches_files(corpus, table):
    assert list(table.columns) == synth.COLUMNS
    assert set(table.relpath) == _videos(corpus)
    assert table.relpath.is_unique
    fake_dirs = ("/manipulated_sequences/", "/Celeb-synthesis/")
    assert (table.label == table.relpath.map(lambda p: int(any(d in p for d in fake_dirs)))).all()
    v1 = table[table.source == "celebdf_v1"].identities.str.split("|").explode()
    v2 = table[table.source == "celebdf_v2"].identities.str.split("|").explode()
    assert set(v1) - {""} and set(v1).isdisjoint(set(v2) - {""})


def test_hog_finds_faces_in_real_and_fake_videos(corpus, table):
    import face_recognition

    good = table[table.defect == ""]
    sample = good.groupby(["source", "method"]).head(1)
    assert len(sample) >= 10
    hits = total = 0
    for rel in sample.relpath:
        for f in _frames(corpus / rel):
            total += 1
            hits += bool(face_recognition.face_locations(f[..., ::-1].copy(), model="hog"))
    assert total == len(sample) * TINY["frames_per_video"]
    assert hits >= 0.95 * total, f"HOG found faces in {hits}/{total} frames"


def test_deterministic_across_threads_and_seeds(corpus, tmp_path):
    t1 = _run(tmp_path / "t1", SEED, threads=1)
    assert (t1 / "corpus.csv").read_bytes() == (corpus / "corpus.csv").read_bytes()
    names = sorted(_videos(corpus))
    assert names == sorted(_videos(t1))
    for rel in names:
        assert _sha(t1 / rel) == _sha(corpus / rel), rel
    for f in ("train", "val", "test"):
        assert (t1 / FF / "splits" / f"{f}.json").read_bytes() == \
            (corpus / FF / "splits" / f"{f}.json").read_bytes()

    other = _run(tmp_path / "s2", SEED + 1, threads=1,
                 spec={**TINY, "dfd": None, "celebdf_v1": None})
    for rel in (f"{ORIG}/000.mp4", "Celeb-DF-v2/Celeb-real/id0_0000.mp4",
                "Celeb-DF-v2/YouTube-real/00000.mp4"):
        assert _sha(other / rel) != _sha(corpus / rel), rel


def _target_of(rel: str) -> str:
    name = Path(rel).name
    if "/DeepFakeDetection/" in rel:
        aa, rest = name.split("_", 1)
        scene = rest.split("__")[1]
        return f"{FF}/original_sequences/actors/c23/videos/{aa}__{scene}.mp4"
    if "/Celeb-synthesis/" in rel:
        i, _, k = Path(name).stem.split("_")
        return f"{rel.split('/')[0]}/Celeb-real/{i}_{k}.mp4"
    return f"{ORIG}/{name.split('_')[0]}.mp4"


def test_artifacts_live_in_the_face(corpus, table):
    import face_recognition

    fakes = table[table.label == 1].groupby(["source", "method"]).head(1)
    assert set(fakes.method) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures",
                                 "DeepFakeDetection", "Celeb-synthesis"}
    assert len(fakes) == 7
    for rel in fakes.relpath:
        real, fake = _frames(corpus / _target_of(rel)), _frames(corpus / rel)
        assert len(real) == len(fake) == TINY["frames_per_video"]
        inside, outside = [], []
        for r, f in zip(real, fake):
            locs = face_recognition.face_locations(r[..., ::-1].copy())
            if not locs:
                continue
            top, right, bottom, left = locs[0]
            diff = np.abs(r.astype(np.float32) - f).mean(2)
            box = np.zeros(diff.shape, bool)
            box[max(top, 0):bottom, max(left, 0):right] = True
            h, w = bottom - top, right - left
            far = np.ones(diff.shape, bool)  # well away from the face (hair, neck, background)
            far[max(top - h // 2, 0):bottom + h // 2, max(left - w // 2, 0):right + w // 2] = False
            inside.append(diff[box].mean())
            outside.append(diff[far].mean())
        assert inside, rel
        assert np.mean(inside) > 2.0, (rel, np.mean(inside))
        assert np.mean(inside) > 3 * np.mean(outside), (rel, np.mean(inside), np.mean(outside))


def test_broken_videos(corpus, table):
    import face_recognition

    bad = table.set_index("defect").loc[["truncated", "empty", "faceless"], "relpath"]
    assert all(p.startswith("Celeb-DF-v2/YouTube-real/") for p in bad)
    empty = corpus / bad["empty"]
    assert empty.stat().st_size == 0
    cap = cv2.VideoCapture(str(empty))
    assert not cap.read()[0]

    trunc = corpus / bad["truncated"]
    head = trunc.read_bytes()[:64]
    assert head[4:8] == b"ftyp" and b"moov" in trunc.read_bytes()[:4096]
    assert len(_frames(trunc)) < TINY["frames_per_video"]

    frames = _frames(corpus / bad["faceless"])
    assert len(frames) == TINY["frames_per_video"]
    assert not any(face_recognition.face_locations(f[..., ::-1].copy()) for f in frames)


def test_spec_validation_and_foreign_tree(tmp_path):
    with pytest.raises(ValueError):
        synth.synthesize_corpus(tmp_path / "a", {"ffpp": {"pairz": 1}}, 1)
    with pytest.raises(ValueError):
        synth.synthesize_corpus(tmp_path / "a", {"framesize": [64, 64]}, 1)
    foreign = tmp_path / "real"
    (foreign / "FaceForensics++").mkdir(parents=True)
    (foreign / "FaceForensics++" / "keep.txt").write_text("real data")
    with pytest.raises(FileExistsError):
        synth.synthesize_corpus(foreign, {"dfd": None, "celebdf_v2": None, "celebdf_v1": None},
                                1)
    assert (foreign / "FaceForensics++" / "keep.txt").read_text() == "real data"
