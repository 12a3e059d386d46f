"""Dataset adapters: turn a downloaded (or synthesised) dataset root into a table of videos.

Each adapter reads one published directory layout and returns the video index of CONTRACTS.md:
``source, video_id, path, label, method, identities, official_split``. Layouts:

- ``faceforensics`` (FaceForensics++): ``original_sequences/youtube/<c>/videos/000.mp4`` and
  ``manipulated_sequences/<Method>/<c>/videos/000_003.mp4`` (target_source), official splits
  ``train.json`` / ``val.json`` / ``test.json`` (lists of id pairs) in ``<root>/splits`` or elsewhere.
- ``dfd`` (DeepFakeDetection, shipped inside the FF++ download): ``original_sequences/actors/<c>/videos/
  01__exit_phone_room.mp4`` and ``manipulated_sequences/DeepFakeDetection/<c>/videos/01_02__scene__CODE.mp4``.
  No official split: every video is a test video.
- ``celebdf`` (Celeb-DF v1 and v2): ``Celeb-real/id0_0000.mp4``, ``YouTube-real/00000.mp4``,
  ``Celeb-synthesis/id0_id1_0000.mp4`` and ``List_of_testing_videos.txt`` (``<label> <relpath>``, where
  1 means *real* in that file). Listed videos are test videos; the rest have no official split yet.
- ``folder``: ``real/`` and ``fake/`` directories of videos (any nesting) for datasets we do not know.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

COLUMNS = ["source", "video_id", "path", "label", "method", "identities", "official_split", "mask_path"]
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
log = logging.getLogger(__name__)


class LayoutError(ValueError):
    """A dataset root does not look like the layout its adapter expects."""


def _check_complete(expected: set, found: set, what: str, allow_partial: bool) -> None:
    """A partial download fails, with counts, unless the source's config allows it."""
    missing = sorted(expected - found)
    if not missing:
        return
    message = f"{what}: {len(missing)} of {len(expected)} expected videos are absent, e.g. {missing[0]}"
    if not allow_partial:
        raise LayoutError(message + " (set allow_partial: true for this source to run on what is there)")
    log.warning("%s; running on the %d present (allow_partial)", message, len(expected) - len(missing))


def _mask(root: Path, method: str, stem: str) -> str:
    """FF++ and DFD ship manipulation masks for fakes, without a compression level in the path."""
    path = root / "manipulated_sequences" / method / "masks" / "videos" / f"{stem}.mp4"
    return str(path) if path.is_file() else ""


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise LayoutError(f"expected {what} at {path}, but there is no such directory")
    return path


def faceforensics(root, source="ffpp", compression="c23", splits=None, namespace="ffpp", methods=FFPP_METHODS,
                  allow_partial=False):
    """Original YouTube videos and the manipulated videos of ``methods``, with the official split."""
    root = Path(root)
    splits = Path(splits) if splits else root / "splits"
    pair_split = {}
    for split in ("train", "val", "test"):
        file = splits / f"{split}.json"
        if not file.is_file():
            raise LayoutError(f"expected the official FaceForensics++ split file {file}")
        for a, b in json.loads(file.read_text()):
            pair_split[frozenset((a, b))] = split
    id_split = {i: s for pair, s in pair_split.items() for i in pair}

    originals = _require_dir(root / "original_sequences" / "youtube" / compression / "videos",
                             f"FaceForensics++ originals at compression {compression}")
    rows = [(f"{source}:youtube/{p.stem}", p, 0, "youtube", f"{namespace}:{p.stem}", id_split.get(p.stem, ""), "")
            for p in _videos(originals)]
    _check_complete(set(id_split), {p.stem for p in _videos(originals)}, f"{originals} (ids in {splits})", allow_partial)
    for method in methods:
        folder = _require_dir(root / "manipulated_sequences" / method / compression / "videos",
                              f"FaceForensics++ {method} videos at compression {compression}")
        videos = _videos(folder)
        expected = {f"{a}_{b}" for pair in pair_split for a in pair for b in pair if a != b}
        _check_complete(expected, {p.stem for p in videos}, f"{folder} (pairs in {splits})", allow_partial)
        for p in videos:
            target, source_id = p.stem.split("_")[:2]
            split = pair_split.get(frozenset((target, source_id)), "")
            rows.append((f"{source}:{method}/{p.stem}", p, 1, method,
                         f"{namespace}:{target}|{namespace}:{source_id}", split, _mask(root, method, p.stem)))
    return _table(rows, source)


def dfd(root, source="dfd", compression="c23", namespace="dfd", **_):
    """DeepFakeDetection: actors' real videos and their fakes; the whole set is a test set."""
    root = Path(root)
    real = _require_dir(root / "original_sequences" / "actors" / compression / "videos",
                        f"DeepFakeDetection originals at compression {compression}")
    fake = _require_dir(root / "manipulated_sequences" / "DeepFakeDetection" / compression / "videos",
                        f"DeepFakeDetection fakes at compression {compression}")
    rows = [(f"{source}:actors/{p.stem}", p, 0, "actors", f"{namespace}:{p.stem.split('__')[0]}", "test", "")
            for p in _videos(real)]
    for p in _videos(fake):
        actors = p.stem.split("__")[0].split("_")
        rows.append((f"{source}:DeepFakeDetection/{p.stem}", p, 1, "DeepFakeDetection",
                     "|".join(f"{namespace}:{a}" for a in actors), "test", _mask(root, "DeepFakeDetection", p.stem)))
    return _table(rows, source)


def celebdf(root, source="celebdf", namespace="celebdf", allow_partial=False, **_):
    """Celeb-DF (v1 or v2): Celeb-real and YouTube-real vs. Celeb-synthesis; listed videos are test videos."""
    root = Path(root)
    test_list = root / "List_of_testing_videos.txt"
    if not test_list.is_file():
        raise LayoutError(f"expected the Celeb-DF test list {test_list}")
    listed = {line.split()[1] for line in test_list.read_text().splitlines() if line.strip()}
    rows = []
    for method, label in (("Celeb-real", 0), ("YouTube-real", 0), ("Celeb-synthesis", 1)):
        folder = root / method
        if method != "YouTube-real":
            _require_dir(folder, f"Celeb-DF folder {method}")
        for p in _videos(folder) if folder.is_dir() else []:
            rel = p.relative_to(root).as_posix()
            ids = re.findall(r"id\d+", p.stem)  # YouTube-real videos name nobody
            rows.append((f"{source}:{method}/{p.stem}", p, label, method,
                         "|".join(f"{namespace}:{i}" for i in ids), "test" if rel in listed else "", ""))
    _check_complete(listed, {Path(r[1]).relative_to(root).as_posix() for r in rows}, f"{test_list} names videos that are absent;", allow_partial)
    return _table(rows, source)


def folder(root, source="folder", **_):
    """Any folder with ``real/`` and ``fake/`` subfolders of videos; no identities, no official split."""
    root = Path(root)
    rows = []
    for name, label in (("real", 0), ("fake", 1)):
        for p in _videos(_require_dir(root / name, f"a '{name}' folder of videos")):
            rows.append((f"{source}:{p.relative_to(root).with_suffix('').as_posix()}", p, label, name, "", "", ""))
    return _table(rows, source)


ADAPTERS = {"faceforensics": faceforensics, "dfd": dfd, "celebdf": celebdf, "folder": folder}
# the fake methods (the ``method`` of its fake videos) each adapter can give a dataset
ADAPTER_METHODS = {"faceforensics": FFPP_METHODS, "dfd": ("DeepFakeDetection",), "celebdf": ("Celeb-synthesis",),
                   "folder": ("fake",)}


def index_videos(source: str, spec: dict) -> pd.DataFrame:
    """The video index of one configured source (``sources.<source>`` in the config)."""
    root = Path(spec["root"])
    if not root.is_dir():
        raise LayoutError(f"sources.{source}.root: {root} does not exist (set it to where the dataset was downloaded)")
    kwargs = {k: v for k, v in spec.items() if k in ("compression", "splits", "allow_partial")}
    if spec.get("identity_namespace"):
        kwargs["namespace"] = spec["identity_namespace"]
    table = ADAPTERS[spec["adapter"]](root, source=source, **kwargs)
    for label, name in ((0, "real"), (1, "fake")):
        if not (table["label"] == label).any():
            raise LayoutError(f"sources.{source}: no {name} videos under {root}")
    return table


def _table(rows, source) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS[1:])
    table.insert(0, "source", source)
    table["path"] = table["path"].map(str)
    table["label"] = table["label"].astype("uint8")
    return table[COLUMNS]


def main(argv=None):
    import argparse

    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="name of the source (a key of `sources` in the config)")
    parser.add_argument("--spec-json", required=True, help="the source's config entry as JSON")
    parser.add_argument("--out", required=True, help="video index (Parquet)")
    args = parser.parse_args(argv)
    table = index_videos(args.source, yaml.safe_load(args.spec_json))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    counts = table.groupby(["method", "official_split"]).size()
    print(f"{args.source}: {len(table)} videos\n{counts.to_string()}")


if __name__ == "__main__":
    main()
