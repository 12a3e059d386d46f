"""Speed of face detection + alignment (dfstudy.faces.align_face), frames per second on one core.

    .venv/bin/python bench/preprocess_speed.py [--seconds 3]

(a) 192x192 synthetic frames (the synthetic datasets' size), (b) one 1920x1080 frame, detected on a
480-wide copy (the default) vs. at full size, (c) a whole 1080p mp4v video through extract_faces, where
the sequential decoding of every frame adds to the 10 detections. Frames are the procedural faces of tests/test_faces.py.
OpenCV is pinned to one thread so the numbers are per core (dlib's HOG is single-threaded anyway).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import cv2

import dfstudy.faces as faces

ROOT = Path(__file__).resolve().parents[1]


def _drawing():
    # The drawing helpers live with the tests; loaded by path so bench/ needs no package of its own.
    spec = importlib.util.spec_from_file_location("_faces_drawing", ROOT / "tests" / "test_faces.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rate(frames, seconds, **kw) -> tuple[float, int]:
    """Frames/s of align_face cycling over ``frames`` for about ``seconds`` (after one warm-up call)."""
    faces.align_face(frames[0], **kw)
    n, ok, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        crop, _ = faces.align_face(frames[n % len(frames)], **kw)
        ok += crop is not None
        n += 1
    return n / (time.perf_counter() - t0), ok / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    p.add_argument("--size", type=int, default=256, help="crop side")
    p.add_argument("--video-frames", type=int, default=100, help="length of the 1080p test video (0: skip)")
    a = p.parse_args()
    cv2.setNumThreads(1)
    d = _drawing()

    small = [d.face_frame(192, 192, s=90 + 3 * (i % 7), angle=(i % 5 - 2) * 4, seed=i) for i in range(20)]
    hd = d.textured_background(1080, 1920, seed=1)
    d.draw_face(hd, 1100, 520, 380, angle=6)

    rows = [
        ("192x192 synthetic, upsample 1", small, dict(detect_width=480, upsample=1)),
        ("192x192 synthetic, upsample 0", small, dict(detect_width=480, upsample=0)),
        ("1920x1080, detect on 480-wide copy", [hd], dict(detect_width=480, upsample=1)),
        ("1920x1080, full size (no downscale)", [hd], dict(detect_width=None, upsample=1)),
    ]
    print(f"align_face (HOG detection + 68 landmarks + rotate/crop/resize to {a.size}), 1 core")
    for name, frames, kw in rows:
        fps, found = rate(frames, a.seconds, size=a.size, **kw)
        print(f"  {name:38s} {fps:7.1f} frames/s  ({1000 / fps:6.1f} ms/frame, face found {found:.0%})")

    if a.video_frames:
        with tempfile.TemporaryDirectory() as tmp:
            frames = []
            for i in range(a.video_frames):
                f = d.textured_background(1080, 1920, seed=1)
                frames.append(d.draw_face(f, 1100 + 2 * (i % 9), 520, 380, angle=6))
            path = d.write_video(Path(tmp) / "hd.mp4", frames, fps=25)
            del frames
            t0 = time.perf_counter()
            n = faces._count_frames(path)
            t_dec = time.perf_counter() - t0
            t0 = time.perf_counter()
            got, _ = faces.extract_faces(path, 10, a.size)
            t_all = time.perf_counter() - t0
        print(f"  1080p mp4v video, {n} frames: decode only {n / t_dec:6.1f} frames/s; "
              f"extract_faces(10 frames) {t_all:.2f} s/video, {len(got)} crops")


if __name__ == "__main__":
    main()
