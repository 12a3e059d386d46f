"""Frames -> aligned face crops + manifest (the preprocessing stage).

For every video, ``n_frames`` frames evenly spaced over its whole length are taken; in each the face is
found with face_recognition's dlib HOG detector (on a downscaled copy, for speed), aligned with the 68
landmarks so that the eyes are level, cropped square with a margin and resized. A target frame without a
usable face is replaced by the next frame that has one, as the study says (the search carries over into the
following segments, so a video yields its full count whenever enough of its frames hold a face); a video
that yields no crop at all is recorded as skipped, with the reason.

Two commands, one module::

    python -m dfstudy.faces --videos results/videos/ffpp.parquet --shard 0 --shards 4 \\
        --out-dir results/faces/ffpp/shard_0 --manifest results/faces/ffpp/shard_0.parquet \\
        --frames 10 --size 256 --margin 0.3 --detect-width 480 --min-face 40 --threads 2
    python -m dfstudy.faces merge --shards results/faces/ffpp/shard_*.parquet \\
        --out results/faces/ffpp/manifest.parquet --skipped results/faces/ffpp/skipped.csv \\
        --max-failed-share 0.2

Manifest rows (CONTRACTS.md): the video-index columns plus ``image_id, frame, image_path, status,
reason, face_rule``; one row per crop (status "ok") and one per skipped frame or video (status
"skipped"). A whole-video skip has ``frame == -1``. Skipped rows have empty ``image_id``/``image_path``.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

from dfstudy.cli import run_subcommands

log = logging.getLogger("dfstudy.faces")  # not __name__: "__main__" under python -m

VIDEO_COLUMNS = ["source", "video_id", "path", "label", "method", "identities", "official_split"]
FACE_COLUMNS = ["image_id", "frame", "image_path", "status", "reason", "face_rule"]

#: Failure reasons of one frame, from least to most informative. When every frame tried for a target
#: fails, the most informative reason is reported (a face that was too small says more than "no face").
FRAME_REASONS = ("no face", "face too small", "no landmarks")
UNREADABLE = "unreadable"

_face_recognition = None


def _fr():
    # Imported lazily: loading dlib's models costs ~0.3 s, which `--help` and `merge` need not pay.
    global _face_recognition
    if _face_recognition is None:
        import face_recognition

        _face_recognition = face_recognition
    return _face_recognition


# --------------------------------------------------------------------------------------------------
# Frame selection
# --------------------------------------------------------------------------------------------------


def frame_indices(n_total: int, n: int) -> list[int]:
    """Indices of ``n`` frames evenly spaced over a video of ``n_total`` frames.

    Frame ``i`` is the first frame of the ``i``-th of ``n`` equal segments, ``floor(i * n_total / n)``,
    so the targets cover the whole video and each target owns the frames up to the next one (where the
    "next frame with a face" search looks).

    Parameters
    ----------
    n_total : int
        Number of frames in the video.
    n : int
        Number of frames wanted.

    Returns
    -------
    list of int
        Strictly increasing indices; all ``n_total`` frames if the video has fewer than ``n``.
    """
    n_total, n = int(n_total), int(n)
    if n_total <= 0 or n <= 0:
        return []
    if n_total <= n:
        return list(range(n_total))
    return [(i * n_total) // n for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Detection and alignment
# --------------------------------------------------------------------------------------------------


def detect_faces(
    frame_rgb: np.ndarray, detect_width: int | None = 480, upsample: int = 1
) -> list[tuple[int, int, int, int]]:
    """Find faces with the HOG detector on a copy at most ``detect_width`` wide.

    Parameters
    ----------
    frame_rgb : ndarray
        (H, W, 3) uint8 RGB frame.
    detect_width : int or None
        Detect on a copy downscaled to this width (never upscaled); None or 0 detects at full size.
        A 1080p frame takes ~0.5-0.8 s at full size and ~0.04 s at 480 wide.
    upsample : int
        ``number_of_times_to_upsample`` of face_recognition; 1 finds faces down to ~40 px in the
        detection copy.

    Returns
    -------
    list of (top, right, bottom, left)
        Boxes in full-resolution pixel coordinates, clipped to the frame.
    """
    h, w = frame_rgb.shape[:2]
    small = frame_rgb
    if detect_width and w > detect_width:
        sw = int(detect_width)
        sh = max(1, int(round(h * sw / w)))
        small = cv2.resize(frame_rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    sy, sx = h / small.shape[0], w / small.shape[1]
    boxes = _fr().face_locations(small, number_of_times_to_upsample=int(upsample), model="hog")
    out = []
    for top, right, bottom, left in boxes:
        out.append(
            (
                max(0, int(round(top * sy))),
                min(w, int(round(right * sx))),
                min(h, int(round(bottom * sy))),
                max(0, int(round(left * sx))),
            )
        )
    return out


def _box_area(box: Sequence[int]) -> int:
    top, right, bottom, left = box
    return max(0, bottom - top) * max(0, right - left)


def _choose_face(boxes, mask, shape) -> tuple[int, str]:
    """Index of the face to keep and the rule that chose it ("mask" or "largest")."""
    areas = [_box_area(b) for b in boxes]
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 3:
            m = m.max(axis=2)
        if m.shape[:2] != tuple(shape[:2]):
            m = cv2.resize(m.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        m = m.astype(bool)
        overlaps = [int(np.count_nonzero(m[t:b, l:r])) for t, r, b, l in boxes]
        if max(overlaps) > 0:
            # Ties (e.g. two boxes inside one large mask) go to the larger face.
            best = max(range(len(boxes)), key=lambda i: (overlaps[i], areas[i]))
            return best, "mask"
    return int(np.argmax(areas)), "largest"


def _eye_angle(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """Angle of the line from the image-left eye to the image-right eye, degrees (y axis down)."""
    d = right_eye - left_eye
    return math.degrees(math.atan2(float(d[1]), float(d[0])))


def align_face(
    frame_rgb: np.ndarray,
    size: int,
    margin: float = 0.3,
    detect_width: int | None = 480,
    upsample: int = 1,
    min_face: int = 40,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray | None, dict[str, Any] | str]:
    """Detect, align and crop the face of one frame.

    The largest face wins, unless ``mask`` is given: then the face whose box covers most mask pixels
    (falling back to the largest when no box touches the mask). The frame is rotated around the eye
    centre so the eyes are level; the crop is the square of side ``max(box h, box w) * (1 + margin)``
    centred on the (rotated) box centre -- margin 0.3 is FaceForensics++'s 1.3 scale -- resized to
    ``size`` x ``size`` with ``cv2.INTER_AREA``. Parts of the square outside the frame are black.

    Parameters
    ----------
    frame_rgb : ndarray
        (H, W, 3) uint8 RGB frame.
    size : int
        Side of the output crop in pixels.
    margin : float
        Enlargement of the face box (0.3 = 30 % larger side).
    detect_width : int or None
        Width of the downscaled detection copy (see :func:`detect_faces`).
    upsample : int
        HOG detector upsampling.
    min_face : int
        Boxes whose shorter side (full resolution) is below this many pixels are rejected.
    mask : ndarray, optional
        Boolean/uint8 mask (H, W) of the manipulated region; selects among several faces.

    Returns
    -------
    (crop, info) or (None, reason)
        ``crop`` is (size, size, 3) uint8 RGB; ``info`` has ``box`` (top, right, bottom, left),
        ``n_faces``, ``face_rule``, ``eye_angle_before``, ``eye_angle_after`` (degrees), ``eyes`` (the
        two eye centres in crop pixels), ``crop_side`` (source pixels) and ``detect_width``. ``reason``
        is one of :data:`FRAME_REASONS`.
    """
    frame_rgb = np.ascontiguousarray(frame_rgb)
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame_rgb.dtype} {frame_rgb.shape}")
    boxes = detect_faces(frame_rgb, detect_width=detect_width, upsample=upsample)
    if not boxes:
        return None, "no face"
    idx, rule = _choose_face(boxes, mask, frame_rgb.shape)
    box = boxes[idx]
    top, right, bottom, left = box
    bh, bw = bottom - top, right - left
    if min(bh, bw) < min_face:
        return None, "face too small"

    marks = _fr().face_landmarks(frame_rgb, [box], model="large")
    if not marks or not marks[0].get("left_eye") or not marks[0].get("right_eye"):
        return None, "no landmarks"
    le = np.mean(np.asarray(marks[0]["left_eye"], np.float64), axis=0)
    re = np.mean(np.asarray(marks[0]["right_eye"], np.float64), axis=0)
    # dlib always places 68 points inside the box it is given; eyes collapsed onto each other or
    # swapped mean the fit is garbage (e.g. a box on a non-face), not a rotated face.
    if np.linalg.norm(re - le) < 0.1 * max(bw, bh) or re[0] <= le[0]:
        return None, "no landmarks"
    angle = _eye_angle(le, re)

    centre = (le + re) / 2.0
    rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
    box_centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0, 1.0])
    c = rot @ box_centre
    side = max(1, int(round(max(bh, bw) * (1.0 + margin))))
    # One warp for rotation + crop: only the side x side window is resampled, not the whole frame.
    affine = rot.copy()
    affine[:, 2] += np.array([side / 2.0, side / 2.0]) - c
    square = cv2.warpAffine(
        frame_rgb, affine, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    crop = cv2.resize(square, (int(size), int(size)), interpolation=cv2.INTER_AREA)

    scale = size / side
    eyes = [(affine @ np.array([p[0], p[1], 1.0])) * scale for p in (le, re)]
    info = {
        "box": tuple(int(v) for v in box),
        "n_faces": len(boxes),
        "face_rule": rule,
        "eye_angle_before": float(angle),
        "eye_angle_after": float(_eye_angle(eyes[0], eyes[1])),
        "eyes": [tuple(float(v) for v in e) for e in eyes],
        "crop_side": side,
        "detect_width": detect_width,
    }
    return crop, info


# --------------------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------------------


def _open_capture(path: str | Path) -> cv2.VideoCapture:
    # Force FFmpeg: with CAP_ANY, OpenCV may hand a name it cannot open to its image-sequence backend.
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)


def _most_informative(reasons: Iterable[str]) -> str:
    reasons = list(reasons)
    if not reasons:
        return "no face"
    return max(reasons, key=lambda r: FRAME_REASONS.index(r) if r in FRAME_REASONS else -1)


def _mask_from_frame(mask_bgr: np.ndarray) -> np.ndarray:
    # Mask videos are lossy-compressed black/white; threshold at half grey.
    grey = mask_bgr if mask_bgr.ndim == 2 else mask_bgr.max(axis=2)
    return grey > 127


def _scan(video_path, targets, size, max_tries, mask_path, align_kwargs):
    """One sequential pass: returns faces, skipped frames, number of frames read.

    A target is owed from its frame on until a frame yields a face; the first frame with a face fills
    the oldest owed target. A target left unfilled in its own segment stays owed into the next ones, so
    a video whose face shows only in its second half still yields one crop per target whenever enough
    frames hold a face (the replacements then sit next to each other).
    """
    cap = _open_capture(video_path)
    mcap = _open_capture(mask_path) if mask_path else None
    if mcap is not None and not mcap.isOpened():
        log.warning("mask video %s cannot be opened; falling back to the largest face", mask_path)
        mcap = None
    faces: list[dict] = []
    skipped: list[dict] = []
    n_read = 0
    try:
        if not cap.isOpened():
            return faces, skipped, 0
        owed: list[int] = []  # targets reached and not filled, oldest first
        reasons: dict[int, list[str]] = {}  # per owed target, why the frames tried for it failed
        tries = 0  # frames tried for the oldest owed target
        pending = 0  # next target not yet reached
        limit = max_tries if max_tries else None
        pos = 0
        while True:
            while pending < len(targets) and pos >= targets[pending]:
                owed.append(targets[pending])
                reasons[targets[pending]] = []
                pending += 1
            wanted = bool(owed) and (limit is None or tries < limit)
            if wanted:
                ok, frame = cap.read()
            else:
                # grab() decodes but skips the colour conversion; we still have to walk every frame
                # because seeking in mp4v/H.264 streams is not frame-exact in OpenCV.
                ok, frame = cap.grab(), None
            if not ok:
                break
            n_read += 1
            mask = None
            if mcap is not None:  # kept in lockstep with the video
                if mcap.grab():
                    if wanted:
                        mok, mframe = mcap.retrieve()
                        mask = _mask_from_frame(mframe) if mok else None
                else:
                    log.warning("mask video %s ended at frame %d; falling back to the largest face", mask_path, pos)
                    mcap.release()
                    mcap = None
            if wanted and frame is not None:
                tries += 1
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                crop, info = align_face(rgb, size, mask=mask, **align_kwargs)
                if crop is None:
                    for t in owed:
                        reasons[t].append(info)
                else:
                    target = owed.pop(0)
                    faces.append({"frame": pos, "crop": crop, "info": dict(info, target=target)})
                    tries = 0
            pos += 1
        for t in owed:
            skipped.append({"frame": t, "reason": _most_informative(reasons[t]) if reasons[t] else UNREADABLE})
        # Targets never reached (the stream ended early); the caller retries with the true length.
        for t in targets[pending:]:
            skipped.append({"frame": t, "reason": UNREADABLE})
    finally:
        cap.release()
        if mcap is not None:
            mcap.release()
    return faces, skipped, n_read


def _count_frames(video_path) -> int:
    cap = _open_capture(video_path)
    n = 0
    try:
        if cap.isOpened():
            while cap.grab():
                n += 1
    finally:
        cap.release()
    return n


def extract_faces(
    video_path: str | Path,
    n_frames: int,
    size: int,
    *,
    mask_path: str | Path | None = None,
    max_tries: int | None = None,
    **align_kwargs,
) -> tuple[list[dict], list[dict]]:
    """Aligned face crops from ``n_frames`` frames evenly spaced over a video.

    The video is read sequentially (frame indices are counted here, not taken from the container). For
    each target of :func:`frame_indices`, if it has no usable face, the following frames are tried (past the
    next target if need be) and the first with a face is kept. ``CAP_PROP_FRAME_COUNT`` is only a first
    guess: if the stream turns out to have a different length, the targets are recomputed from the
    frames actually read and the video is read once more.

    Parameters
    ----------
    video_path : str or Path
        Video file readable by OpenCV's FFmpeg backend.
    n_frames : int
        Frames wanted per video.
    size : int
        Crop side in pixels.
    mask_path : str or Path, optional
        Video of manipulation masks, frame-synchronous with ``video_path`` (e.g. FaceForensics++
        ``masks/videos``); its frames are passed to :func:`align_face` as ``mask``.
    max_tries : int, optional
        At most this many frames tried per target (None: every following frame until one has a face).
    **align_kwargs
        ``margin``, ``detect_width``, ``upsample``, ``min_face`` for :func:`align_face`.

    Returns
    -------
    faces : list of dict
        ``frame`` (index read), ``crop`` ((size, size, 3) uint8 RGB), ``info`` (see :func:`align_face`,
        plus ``target``, the evenly spaced index it replaces).
    skipped : list of dict
        ``frame`` and ``reason``: one per target that yielded no face, or, if the whole video gave no
        crop, a single entry with ``frame == -1`` and reason ``"unreadable"`` (cannot be opened / no
        frame decodes) or the most informative per-frame reason (usually ``"no face"``).
    """
    cap = _open_capture(video_path)
    try:
        opened = cap.isOpened()
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
    finally:
        cap.release()
    if not opened:
        return [], [{"frame": -1, "reason": UNREADABLE}]

    n_total = reported if reported > 0 else _count_frames(video_path)
    faces, skipped, n_read = [], [], 0
    for _ in range(2):  # a second pass only when the container lied about its length
        if n_total <= 0:
            break
        targets = frame_indices(n_total, n_frames)
        faces, skipped, n_read = _scan(video_path, targets, size, max_tries, mask_path, align_kwargs)
        if n_read == 0 or n_read == n_total or frame_indices(n_read, n_frames) == targets:
            break
        log.info("%s: container says %d frames, %d decoded; re-reading with the true length",
                 video_path, n_total, n_read)
        n_total = n_read
    if n_read == 0:
        return [], [{"frame": -1, "reason": UNREADABLE}]
    if not faces:
        return [], [{"frame": -1, "reason": _most_informative(s["reason"] for s in skipped if s["reason"] != UNREADABLE)}]
    return faces, skipped


# --------------------------------------------------------------------------------------------------
# Shard worker
# --------------------------------------------------------------------------------------------------


def safe_video_id(video_id: str) -> str:
    """Directory name for a video id: ``/`` and ``:`` replaced by ``_``."""
    return str(video_id).replace("/", "_").replace(":", "_")


def _worker_init() -> None:
    # One process per core already; OpenCV's own thread pool would only oversubscribe.
    cv2.setNumThreads(1)
    _fr()


def _process_one(task) -> list[dict]:
    row, out_dir, n_frames, size, kw = task
    base = {k: v for k, v in row.items() if k != "_mask_path"}
    mask_path = row.get("_mask_path") or None

    def skip(frame, reason):
        return dict(base, image_id="", frame=int(frame), image_path="", status="skipped", reason=reason, face_rule="")

    try:
        faces, skipped = extract_faces(row["path"], n_frames, size, mask_path=mask_path, **kw)
    except Exception as exc:  # one broken video must not take the shard down; it is recorded instead
        log.exception("video %s (%s) failed", row.get("video_id"), row.get("path"))
        return [skip(-1, f"error: {type(exc).__name__}: {exc}")]

    rows = []
    if faces:
        vdir = Path(out_dir) / safe_video_id(row["video_id"])
        vdir.mkdir(parents=True, exist_ok=True)
    for f in faces:
        path = Path(out_dir) / safe_video_id(row["video_id"]) / f"{f['frame']:05d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(f["crop"], cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        rows.append(
            dict(
                base,
                image_id=f"{row['video_id']}#{f['frame']}",
                frame=int(f["frame"]),
                image_path=str(path),
                status="ok",
                reason="",
                face_rule=f["info"]["face_rule"],
            )
        )
    rows.extend(skip(s["frame"], s["reason"]) for s in skipped)
    return rows


def _empty_manifest(columns: Sequence[str], like: pd.DataFrame | None = None) -> pd.DataFrame:
    """Zero-row manifest; keeps the dtypes of ``like`` (the video table) so shards concatenate cleanly."""
    df = like.iloc[0:0].copy() if like is not None else pd.DataFrame()
    for c in columns:
        if c not in df.columns:
            df[c] = pd.Series(dtype="int64" if c == "frame" else object)
    return df[list(columns)]


def process_videos(
    videos: pd.DataFrame,
    out_dir: str | Path,
    n_frames: int,
    size: int,
    threads: int = 1,
    training_frames: int | None = None,
    **kw,
) -> pd.DataFrame:
    """Extract face crops for a table of videos (one shard) and return its manifest.

    Parameters
    ----------
    videos : DataFrame
        Video-index rows (``source, video_id, path, label, method, identities, official_split``); an
        optional ``mask_path`` column names frame-synchronous mask videos (empty = none).
    out_dir : str or Path
        Crops go to ``out_dir/<safe video id>/<frame:05d>.png``; created even for an empty table.
    n_frames, size : int
        Frames per video and crop side.
    training_frames : int, optional
        Frames per video for videos outside the official test split (those that may feed training,
        validation and fine-tuning): the study's image counts need more than 10 faces from each of them
        at the real datasets' video counts. None: ``n_frames`` for every video.
    threads : int
        Worker processes (1 = in this process).
    **kw
        Passed to :func:`extract_faces` (``margin, detect_width, upsample, min_face, max_tries``).

    Returns
    -------
    DataFrame
        The input columns plus ``image_id, frame, image_path, status, reason, face_rule``, in video
        order; one row per crop and one per skipped frame/video.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [c for c in VIDEO_COLUMNS if c not in videos.columns]
    if missing:
        raise ValueError(f"video table lacks columns {missing}")
    in_cols = list(videos.columns)
    columns = in_cols + [c for c in FACE_COLUMNS if c not in in_cols]
    if len(videos) == 0:
        return _empty_manifest(columns, like=videos)

    tasks = []
    for rec in videos.to_dict("records"):
        if "mask_path" in rec:
            mp = rec["mask_path"]
            rec["_mask_path"] = mp if isinstance(mp, str) and mp else None
        frames = training_frames if training_frames and rec["official_split"] != "test" else n_frames
        tasks.append((rec, str(out_dir), int(frames), int(size), kw))

    results: list[list[dict]] = []
    bar = tqdm(total=len(tasks), desc=f"faces {out_dir.name}", unit="video", file=sys.stderr)
    try:
        if threads <= 1:
            for t in tasks:
                results.append(_process_one(t))
                bar.update()
        else:
            # spawn, not fork: the parent has pyarrow/tqdm threads running, and forking a threaded
            # process can deadlock; each worker loads dlib's models once.
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(int(threads), initializer=_worker_init) as pool:
                for rows in pool.imap(_process_one, tasks, chunksize=1):
                    results.append(rows)
                    bar.update()
    finally:
        bar.close()

    rows = [r for rs in results for r in rs]
    manifest = pd.DataFrame(rows, columns=columns)
    manifest["frame"] = manifest["frame"].astype("int64")
    n_ok = int((manifest["status"] == "ok").sum())
    n_bad = int(manifest.loc[manifest["status"] != "ok", "video_id"].nunique())
    log.info("%d videos -> %d crops; %d videos with skipped frames/videos", len(videos), n_ok, n_bad)
    return manifest


# --------------------------------------------------------------------------------------------------
# Merge
# --------------------------------------------------------------------------------------------------


class TooManyFailedVideos(RuntimeError):
    """More videos of a (source, method) than allowed yielded no face crop."""


def merge_manifests(
    shard_tables: Sequence[pd.DataFrame],
    max_failed_share: float,
    manifest_path: str | Path = "<manifest>",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate shard manifests and check how many videos failed.

    Parameters
    ----------
    shard_tables : sequence of DataFrame
        Shard manifests from :func:`process_videos`.
    max_failed_share : float
        Largest allowed share of videos without any face crop, per class of a source: its real videos
        together, and the fakes of each method (the two halves of a study dataset).
    manifest_path : str or Path
        Named in the error message only.

    Returns
    -------
    manifest : DataFrame
        All rows of all shards.
    summary : DataFrame
        Per (source, group): ``videos, failed_videos, failed_share, crops, skipped_rows``, where group is
        "real" or the fake method.

    Raises
    ------
    TooManyFailedVideos
        If a (source, group) has a failed share above ``max_failed_share``; the message names each such
        group, its share and its most common skip reasons, and ``manifest_path``. The merged manifest and
        summary are attached as ``.manifest`` and ``.summary``.
    ValueError
        If a video appears in more than one shard.
    """
    tables = [t for t in shard_tables if t is not None]
    non_empty = [t for t in tables if len(t)]
    if non_empty:
        manifest = pd.concat(non_empty, ignore_index=True)
    elif tables:
        manifest = tables[0].iloc[0:0].copy()
    else:
        manifest = _empty_manifest(VIDEO_COLUMNS + FACE_COLUMNS)
    manifest["frame"] = manifest["frame"].astype("int64")

    if non_empty:
        owners = pd.concat(
            [pd.DataFrame({"video_id": t["video_id"].unique(), "shard": i}) for i, t in enumerate(non_empty)]
        )
        dup = owners["video_id"][owners["video_id"].duplicated()]
        if len(dup):
            raise ValueError(f"{dup.nunique()} videos appear in several shards, e.g. {dup.iloc[0]!r}")

    keys = ["source", "group"]
    m = manifest.copy()
    m["group"] = m["method"].where(m["label"] == 1, "real")
    m[keys] = m[keys].fillna("")  # NaN keys would not compare equal below
    m["_ok"] = m["status"] == "ok"
    per_video = m.groupby(keys + ["video_id"])["_ok"].any().reset_index()
    summary = (
        per_video.groupby(keys)
        .agg(videos=("video_id", "size"), failed_videos=("_ok", lambda s: int((~s).sum())))
        .reset_index()
    )
    counts = m.groupby(keys).agg(crops=("_ok", "sum"), rows=("_ok", "size")).reset_index()
    summary = summary.merge(counts, on=keys, how="left")
    summary["skipped_rows"] = summary["rows"] - summary["crops"]
    summary = summary.drop(columns="rows")
    summary["failed_share"] = summary["failed_videos"] / summary["videos"].clip(lower=1)
    summary = summary[keys + ["videos", "failed_videos", "failed_share", "crops", "skipped_rows"]]

    bad = summary[summary["failed_share"] > max_failed_share]
    if len(bad):
        failed_ids = set(per_video.loc[~per_video["_ok"], "video_id"])
        lines = []
        for _, g in bad.iterrows():
            sel = m[(m["source"] == g["source"]) & (m["group"] == g["group"]) & m["video_id"].isin(failed_ids)]
            whole = sel[sel["frame"] == -1]["reason"]
            top = ", ".join(f"{r} {n}" for r, n in Counter(whole).most_common(3))
            lines.append(
                f"  {g['source']}/{g['group'] or '(no method)'}: {g['failed_videos']}/{g['videos']} videos "
                f"({g['failed_share']:.1%}) gave no face crop ({top})"
            )
        err = TooManyFailedVideos(
            f"face extraction failed for more than max_failed_share={max_failed_share:.1%} of the videos of\n"
            + "\n".join(lines)
            + f"\nmanifest: {manifest_path}; see the skipped rows (status == 'skipped') for the reasons."
        )
        err.manifest, err.summary = manifest, summary
        raise err
    return manifest, summary


# --------------------------------------------------------------------------------------------------
# CLIs
# --------------------------------------------------------------------------------------------------


def select_shard(videos: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Rows whose position ``i`` satisfies ``i % shards == shard``."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"need 0 <= shard < shards, got shard={shard} shards={shards}")
    return videos.iloc[np.flatnonzero(np.arange(len(videos)) % shards == shard)].reset_index(drop=True)


def _write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


def main_merge(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m dfstudy.faces merge --shards ... --out ... --skipped ... --max-failed-share``."""
    p = argparse.ArgumentParser(prog="python -m dfstudy.faces merge", description=merge_manifests.__doc__.split("\n")[0])
    p.add_argument("--shards", nargs="+", required=True, help="shard manifests (Parquet)")
    p.add_argument("--out", required=True, help="merged manifest (Parquet)")
    p.add_argument("--skipped", required=True, help="CSV of all skipped rows with reasons")
    p.add_argument("--summary", help="optional CSV of per (source, method) counts")
    p.add_argument("--max-failed-share", type=float, default=0.2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    tables = [pd.read_parquet(s) for s in a.shards]
    try:
        manifest, summary = merge_manifests(tables, a.max_failed_share, manifest_path=a.out)
    except TooManyFailedVideos as err:
        # Written even on failure (CSV is for humans); note Snakemake removes outputs of failed jobs.
        _write_skipped(err.manifest, a.skipped)
        log.error("%s", err)
        raise
    _write_parquet(manifest, a.out)
    _write_skipped(manifest, a.skipped)
    if a.summary:
        Path(a.summary).parent.mkdir(parents=True, exist_ok=True)
        summary.to_csv(a.summary, index=False)
    log.info("merged %d shards: %d crops from %d videos -> %s", len(tables),
             int((manifest["status"] == "ok").sum()), manifest["video_id"].nunique(), a.out)
    for _, r in summary.iterrows():
        log.info("  %s/%s: %d videos, %d failed (%.1f%%), %d crops", r["source"], r["group"], r["videos"],
                 r["failed_videos"], 100 * r["failed_share"], r["crops"])


def _write_skipped(manifest: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cols = ["source", "method", "video_id", "path", "label", "frame", "reason"]
    manifest.loc[manifest["status"] != "ok", cols].to_csv(path, index=False)


def main_extract(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m dfstudy.faces extract --videos ... --shard k --shards n --out-dir ... --manifest ...``."""
    p = argparse.ArgumentParser(
        prog="python -m dfstudy.faces extract",
        description="Extract aligned face crops for one shard of a video index.",
    )
    p.add_argument("--videos", required=True, help="video index (Parquet)")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--out-dir", required=True, help="directory for the PNG crops of this shard")
    p.add_argument("--manifest", required=True, help="shard manifest (Parquet)")
    p.add_argument("--frames", type=int, default=10, help="frames per video")
    p.add_argument("--frames-training", type=int, default=0,
                   help="frames per video outside the official test split (0 = --frames)")
    p.add_argument("--size", type=int, default=256, help="crop side in pixels")
    p.add_argument("--margin", type=float, default=0.3, help="face box enlargement (0.3 = 1.3x)")
    p.add_argument("--detect-width", type=int, default=480, help="detect on a copy this wide (0 = full size)")
    p.add_argument("--upsample", type=int, default=1, help="HOG detector upsampling")
    p.add_argument("--min-face", type=int, default=40, help="smallest face box side (pixels, full res)")
    p.add_argument("--max-tries", type=int, default=0, help="frames tried per target (0 = up to the next target)")
    p.add_argument("--threads", type=int, default=1, help="worker processes")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    videos = pd.read_parquet(a.videos)
    shard = select_shard(videos, a.shard, a.shards)
    log.info("shard %d/%d: %d of %d videos", a.shard, a.shards, len(shard), len(videos))
    manifest = process_videos(
        shard,
        a.out_dir,
        n_frames=a.frames,
        training_frames=a.frames_training or None,
        size=a.size,
        threads=a.threads,
        margin=a.margin,
        detect_width=a.detect_width or None,
        upsample=a.upsample,
        min_face=a.min_face,
        max_tries=a.max_tries or None,
    )
    _write_parquet(manifest, a.manifest)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m dfstudy.faces extract ...`` (one shard) or ``... merge ...`` (all shards)."""
    run_subcommands("python -m dfstudy.faces", "Face crops of the videos: extract one shard, merge the shards.",
                    {"extract": ("aligned face crops of one shard of a video index", main_extract),
                     "merge": ("merge the shard manifests, fail above --max-failed-share", main_merge)}, argv)


if __name__ == "__main__":
    main()
