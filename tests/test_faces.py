"""Tests of dfstudy.faces on procedurally drawn faces (no data, no other stage needed).

The drawn faces are crude but the dlib HOG detector and the 68-landmark model find them reliably
(checked first, in ``test_drawn_face_is_detected``), with the eyes where they were drawn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

import dfstudy.faces as faces

# --------------------------------------------------------------------------------------------------
# Procedural faces and videos
# --------------------------------------------------------------------------------------------------


def textured_background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour blobs plus noise: texture for HOG, but nothing face-like."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, size=(max(h // 16, 2), max(w // 16, 2), 3)).astype(np.uint8)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=(h, w, 3))
    return np.clip(bg.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def draw_face(img: np.ndarray, cx: int, cy: int, s: int, angle: float = 0.0) -> np.ndarray:
    """Draw (in place, RGB) a face about ``s`` px wide centred at (cx, cy), rotated ``angle`` degrees
    counter-clockwise on screen (cv2 convention). Returns ``img``."""
    h, w = img.shape[:2]
    pad = int(s * 1.2)
    size = 2 * pad
    canvas = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    c = (pad, pad)
    a, b = int(s * 0.5), int(s * 0.65)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.sqrt(((xx - c[0] + 0.15 * a) / a) ** 2 + ((yy - c[1] + 0.2 * b) / b) ** 2)
    shade = np.clip(1.05 - 0.35 * d**2, 0.55, 1.05)  # light from the upper left
    canvas[:] = np.array([224, 172, 140], np.float32) * shade[..., None]
    cv2.ellipse(alpha, c, (a, b), 0, 0, 360, 1.0, -1)

    def p(x, y):
        return (int(c[0] + x * s), int(c[1] + y * s))

    ex, ey = 0.19, -0.1
    for sx in (-1, 1):
        cv2.ellipse(canvas, p(sx * ex, ey - 0.11), (int(0.12 * s), int(0.035 * s)), 0, 180, 360,
                    (70, 45, 30), max(2, int(0.035 * s)))  # brow
        cv2.ellipse(canvas, p(sx * ex, ey), (int(0.1 * s), int(0.045 * s)), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(canvas, p(sx * ex, ey), int(0.04 * s), (90, 60, 40), -1)  # iris
        cv2.circle(canvas, p(sx * ex, ey), int(0.018 * s), (10, 10, 10), -1)  # pupil
        cv2.ellipse(canvas, p(sx * ex, ey), (int(0.1 * s), int(0.045 * s)), 0, 0, 360, (60, 40, 30),
                    max(1, int(0.01 * s)))
    cv2.line(canvas, p(0, -0.05), p(-0.03, 0.12), (170, 120, 95), max(1, int(0.02 * s)))  # nose
    cv2.ellipse(canvas, p(0, 0.13), (int(0.07 * s), int(0.03 * s)), 0, 0, 180, (150, 100, 80), max(1, int(0.02 * s)))
    cv2.ellipse(canvas, p(0, 0.3), (int(0.15 * s), int(0.05 * s)), 0, 0, 180, (150, 50, 50), max(2, int(0.03 * s)))
    cv2.line(canvas, p(-0.15, 0.3), p(0.15, 0.3), (120, 40, 40), max(1, int(0.015 * s)))  # mouth

    rot = cv2.getRotationMatrix2D((pad, pad), angle, 1.0)
    canvas = cv2.warpAffine(canvas, rot, (size, size), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(alpha, rot, (size, size), flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, s * 0.01))[..., None]
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(0.6, s * 0.006))
    x0, y0 = cx - pad, cy - pad
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    sub = img[iy0:iy1, ix0:ix1].astype(np.float32)
    cc = canvas[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    aa = alpha[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    img[iy0:iy1, ix0:ix1] = np.clip(sub * (1 - aa) + cc * aa, 0, 255).astype(np.uint8)
    return img


def face_frame(h=128, w=128, s=64, angle=0.0, seed=0, dx=0, dy=0) -> np.ndarray:
    return draw_face(textured_background(h, w, seed), w // 2 + dx, h // 2 + dy, s, angle)


def write_video(path, frames_rgb, fps=10) -> str:
    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def good_video(path, n=20, **kw):
    # A little motion, so consecutive frames differ as in a real video.
    return write_video(path, [face_frame(dx=(i % 5) - 2, dy=(i % 3) - 1, seed=0, **kw) for i in range(n)])


def blank_video(path, n=20, h=128, w=128):
    return write_video(path, [textured_background(h, w, seed=i % 3) for i in range(n)])


def iou(a, b) -> float:
    (t1, r1, b1, l1), (t2, r2, b2, l2) = a, b
    ih, iw = max(0, min(b1, b2) - max(t1, t2)), max(0, min(r1, r2) - max(l1, l2))
    inter = ih * iw
    return inter / ((b1 - t1) * (r1 - l1) + (b2 - t2) * (r2 - l2) - inter)


def eye_angle_of(img, box):
    lm = faces._fr().face_landmarks(img, [box])[0]
    le, re = np.mean(lm["left_eye"], axis=0), np.mean(lm["right_eye"], axis=0)
    return math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))


def video_table(paths, method="Face2Face"):
    return pd.DataFrame(
        {
            "source": "synth",
            "video_id": [f"synth:{method}/{i:03d}" for i in range(len(paths))],
            "path": [str(p) for p in paths],
            "label": 1,
            "method": method,
            "identities": [f"synth:{i}" for i in range(len(paths))],
            "official_split": "test",
        }
    )


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_drawn_face_is_detected():
    img = face_frame(192, 192, s=100)
    boxes = faces.detect_faces(img)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert abs((left + right) / 2 - 96) < 15 and abs((top + bottom) / 2 - 96) < 20
    assert faces.detect_faces(textured_background(192, 192)) == []


def test_frame_indices_cover_whole_video():
    idx = faces.frame_indices(300, 10)
    assert idx == list(range(0, 300, 30))
    idx = faces.frame_indices(95, 10)
    assert len(idx) == 10 and idx[0] == 0 and all(np.diff(idx) > 0)
    assert idx[-1] >= 95 - 95 / 10 - 1  # the last target lies in the last tenth
    assert set(np.diff(idx)) <= {9, 10}
    assert faces.frame_indices(1000, 10)[-1] == 900
    assert faces.frame_indices(7, 10) == list(range(7))
    assert faces.frame_indices(0, 10) == [] and faces.frame_indices(10, 0) == []


def test_align_levels_the_eyes():
    size, margin = 128, 0.3
    img = face_frame(192, 192, s=100, angle=12)
    crop, info = faces.align_face(img, size, margin=margin)
    assert crop is not None, info
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    assert abs(info["eye_angle_before"]) > 8  # the drawn face really is tilted
    assert abs(info["eye_angle_after"]) < 0.5
    assert info["face_rule"] == "largest" and info["n_faces"] == 1
    # Independent check: landmarks on the crop itself, with the face box the crop was built from.
    inner = int(round(size / (1 + margin)))
    o = (size - inner) // 2
    assert abs(eye_angle_of(crop, (o, o + inner, o + inner, o))) < 3
    # And the crop is a face the detector finds again, roughly filling it.
    again = faces.detect_faces(crop, detect_width=None)
    assert len(again) == 1


def test_align_failure_reasons():
    img = face_frame(128, 128, s=64)
    assert faces.align_face(textured_background(128, 128), 64) == (None, "no face")
    assert faces.align_face(img, 64, min_face=200) == (None, "face too small")


def test_downscaled_detection_maps_box_back():
    # HOG boxes come in pyramid steps of 1.2x, so full-res and downscaled detections of the same face
    # differ by up to one step (IoU ~0.75-0.92 depending on face size); 360 px sits mid-range.
    img = textured_background(1080, 1920, seed=3)
    draw_face(img, 1300, 600, 360)
    full = faces.detect_faces(img, detect_width=None)
    small = faces.detect_faces(img, detect_width=480)
    assert len(full) == 1 and len(small) == 1
    assert iou(full[0], small[0]) > 0.8
    crop, info = faces.align_face(img, 64, detect_width=480)
    assert crop is not None and iou(info["box"], full[0]) > 0.8

    # Exact mapping: a 4x upscaled frame, detected at 480 wide, gives 4x the boxes of the original.
    base = textured_background(270, 480, seed=4)
    draw_face(base, 300, 140, 110)
    direct = faces.detect_faces(base, detect_width=None)
    big = cv2.resize(base, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    mapped = faces.detect_faces(big, detect_width=480)
    assert len(direct) == 1 and len(mapped) == 1
    assert np.allclose(np.array(mapped[0]), 4 * np.array(direct[0]), atol=4)


def test_mask_picks_masked_face():
    img = textured_background(240, 360, seed=5)
    draw_face(img, 100, 120, 110)  # larger
    draw_face(img, 270, 120, 80)  # smaller, "manipulated"
    crop, info = faces.align_face(img, 64)
    assert info["face_rule"] == "largest" and info["n_faces"] == 2
    assert (info["box"][1] + info["box"][3]) / 2 < 180

    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (270, 125), (35, 45), 0, 0, 360, 255, -1)
    crop, info = faces.align_face(img, 64, mask=mask)
    assert crop is not None
    assert info["face_rule"] == "mask"
    assert (info["box"][1] + info["box"][3]) / 2 > 180

    crop, info = faces.align_face(img, 64, mask=np.zeros(img.shape[:2], bool))
    assert info["face_rule"] == "largest"


def test_mask_video_column(tmp_path):
    # FaceForensics++-style: a frame-synchronous mask video, named in an optional `mask_path` column.
    img = textured_background(240, 360, seed=5)
    draw_face(img, 100, 120, 110)
    draw_face(img, 270, 120, 80)
    mask = np.zeros_like(img)
    cv2.ellipse(mask, (270, 125), (35, 45), 0, 0, 360, (255, 255, 255), -1)
    videos = video_table([write_video(tmp_path / "v.mp4", [img] * 4), write_video(tmp_path / "w.mp4", [img] * 4)])
    videos["mask_path"] = [write_video(tmp_path / "m.mp4", [mask] * 4), ""]
    m = faces.process_videos(videos, tmp_path / "out", n_frames=2, size=32, threads=1)
    assert list(m["face_rule"]) == ["mask", "mask", "largest", "largest"]
    assert "mask_path" in m.columns


def test_next_frame_with_a_face(tmp_path):
    # targets 0, 10, 20: frame 10 is blank but 11 has a face; 20..29 have none at all.
    frames = [face_frame(dx=i % 3) for i in range(10)]
    frames += [textured_background(128, 128, 1)] + [face_frame(dx=i % 3) for i in range(9)]
    frames += [textured_background(128, 128, 2)] * 10
    path = write_video(tmp_path / "v.mp4", frames)
    got, skipped = faces.extract_faces(path, 3, 64)
    assert [f["frame"] for f in got] == [0, 11]
    assert got[1]["info"]["target"] == 10
    assert skipped == [{"frame": 20, "reason": "no face"}]
    assert all(f["crop"].shape == (64, 64, 3) for f in got)


def test_a_face_only_in_the_second_half_still_yields_every_target(tmp_path):
    # 10 targets over 40 frames (0, 4, ..., 36); frames 0-19 hold no face, 20-39 all do
    frames = [textured_background(128, 128, i % 3) for i in range(20)]
    frames += [face_frame(dx=(i % 5) - 2) for i in range(20)]
    got, skipped = faces.extract_faces(write_video(tmp_path / "v.mp4", frames), 10, 64)
    assert skipped == [] and len(got) == 10
    assert [f["info"]["target"] for f in got] == list(range(0, 40, 4))
    assert len({f["frame"] for f in got}) == 10 and min(f["frame"] for f in got) == 20
    # the first half's five targets are filled by the first face frames, each target by a later frame
    assert all(f["frame"] >= f["info"]["target"] for f in got)


def test_training_side_videos_give_more_faces(tmp_path):
    paths = [good_video(tmp_path / f"{i}.mp4", n=30) for i in range(2)]
    table = video_table(paths)
    table["official_split"] = ["test", "train"]
    manifest = faces.process_videos(table, tmp_path / "crops", n_frames=4, size=32, training_frames=12)
    per_video = manifest[manifest["status"] == "ok"].groupby("official_split").size()
    assert per_video.to_dict() == {"test": 4, "train": 12}


def test_wrong_frame_count_is_survived(tmp_path, monkeypatch):
    path = good_video(tmp_path / "v.mp4", n=20)

    class Liar:
        """A capture whose container claims a different length than it has."""

        def __init__(self, cap, claim):
            self.cap, self.claim = cap, claim

        def get(self, prop):
            return self.claim if prop == cv2.CAP_PROP_FRAME_COUNT else self.cap.get(prop)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    real_open = faces._open_capture
    for claim in (40, 12, -1):
        monkeypatch.setattr(faces, "_open_capture", lambda p, c=claim: Liar(real_open(p), c))
        got, skipped = faces.extract_faces(path, 4, 32)
        assert [f["frame"] for f in got] == [0, 5, 10, 15], claim
        assert skipped == []


def test_shard_with_broken_videos(tmp_path):
    good = good_video(tmp_path / "good.mp4", n=20)
    data = open(good, "rb").read()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.mp4").write_bytes(b"")
    garbled = bytearray(data)  # container intact, every frame's bytes replaced by noise
    lo, hi = data.find(b"mdat") + 4, data.find(b"moov") - 4
    garbled[lo:hi] = np.random.default_rng(0).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    (tmp_path / "garbled.mp4").write_bytes(bytes(garbled))
    faceless = blank_video(tmp_path / "faceless.mp4", n=15)
    paths = [good, tmp_path / "truncated.mp4", tmp_path / "empty.mp4", faceless, tmp_path / "missing.mp4",
             tmp_path / "garbled.mp4"]
    videos = video_table(paths)
    out = tmp_path / "crops"
    m = faces.process_videos(videos, out, n_frames=10, size=48, threads=2, min_face=30)

    assert list(m.columns) == faces.VIDEO_COLUMNS + faces.FACE_COLUMNS
    ok = m[m["status"] == "ok"]
    assert len(ok) == 10 and set(ok["video_id"]) == {videos["video_id"][0]}
    assert list(ok["frame"]) == list(range(0, 20, 2))
    assert list(ok["image_id"]) == [f"synth:Face2Face/000#{f}" for f in range(0, 20, 2)]
    assert set(ok["face_rule"]) == {"largest"}
    for p in ok["image_path"]:
        img = cv2.imread(p)
        assert img is not None and img.shape == (48, 48, 3)
    assert ok["image_path"].iloc[0].endswith("synth_Face2Face_000/00000.png")

    bad = m[m["status"] == "skipped"].set_index("video_id")
    assert len(bad) == 5 and (bad["frame"] == -1).all()
    reasons = bad["reason"].to_dict()
    vid = list(videos["video_id"])
    assert reasons[vid[1]] == "unreadable" and reasons[vid[2]] == "unreadable"
    assert reasons[vid[3]] == "no face" and reasons[vid[4]] == "unreadable" and reasons[vid[5]] == "unreadable"
    assert (bad["image_id"] == "").all() and (bad["label"] == 1).all()


def test_cli_shards_and_merge(tmp_path):
    good = good_video(tmp_path / "good.mp4", n=12)
    (tmp_path / "empty.mp4").write_bytes(b"")
    index = tmp_path / "videos.parquet"
    video_table([good, tmp_path / "empty.mp4"]).to_parquet(index)
    common = ["extract", "--videos", str(index), "--shards", "3", "--frames", "3", "--size", "32", "--min-face", "30",
              "--threads", "1"]
    shard_files = []
    for k in range(3):
        shard_files.append(tmp_path / f"shard_{k}.parquet")
        faces.main(common + ["--shard", str(k), "--out-dir", str(tmp_path / f"shard_{k}"),
                             "--manifest", str(shard_files[-1])])
        assert (tmp_path / f"shard_{k}").is_dir()
    s0, s1, s2 = (pd.read_parquet(f) for f in shard_files)
    assert len(s2) == 0 and list(s2.columns) == faces.VIDEO_COLUMNS + faces.FACE_COLUMNS
    assert (s0["status"] == "ok").sum() == 3 and list(s1["reason"]) == ["unreadable"]

    out, skipped = tmp_path / "manifest.parquet", tmp_path / "skipped.csv"
    with pytest.raises(faces.TooManyFailedVideos, match=r"synth/Face2Face: 1/2 videos \(50.0%\)"):
        faces.main(["merge", "--shards", *map(str, shard_files), "--out", str(out), "--skipped", str(skipped),
                    "--max-failed-share", "0.2"])
    assert not out.exists() and len(pd.read_csv(skipped)) == 1
    faces.main(["merge", "--shards", *map(str, shard_files), "--out", str(out), "--skipped", str(skipped),
                "--max-failed-share", "0.5"])
    merged = pd.read_parquet(out)
    assert len(merged) == 4 and (merged["status"] == "ok").sum() == 3
    sk = pd.read_csv(skipped)
    assert list(sk["reason"]) == ["unreadable"] and sk["video_id"].iloc[0] == "synth:Face2Face/001"


def _fake_shard(method, n_videos, n_failed, start=0):
    rows = []
    for i in range(start, start + n_videos):
        base = dict(source="ffpp", video_id=f"ffpp:{method}/{i:03d}", path=f"/v/{i}.mp4", label=1, method=method,
                    identities=f"ffpp:{i:03d}", official_split="train")
        if i - start < n_failed:
            rows.append(dict(base, image_id="", frame=-1, image_path="", status="skipped", reason="no face",
                             face_rule=""))
        else:
            rows += [dict(base, image_id=f"{base['video_id']}#{f}", frame=f, image_path=f"x/{f:05d}.png",
                          status="ok", reason="", face_rule="largest") for f in (0, 30)]
            rows.append(dict(base, image_id="", frame=60, image_path="", status="skipped", reason="face too small",
                             face_rule=""))
    return pd.DataFrame(rows)


def test_merge_error_above_max_failed_share():
    ok = _fake_shard("Deepfakes", 10, 1)
    bad = pd.concat([_fake_shard("NeuralTextures", 5, 2), _fake_shard("NeuralTextures", 5, 1, start=5)])
    manifest, summary = faces.merge_manifests([ok, _fake_shard("FaceSwap", 10, 2)], 0.2)
    assert len(manifest) == len(ok) + 10 * 3 - 2 * 2
    row = summary.set_index("group").loc["FaceSwap"]
    assert (row["videos"], row["failed_videos"], row["crops"]) == (10, 2, 16)
    assert row["failed_share"] == pytest.approx(0.2)

    with pytest.raises(faces.TooManyFailedVideos) as err:
        faces.merge_manifests([ok, bad], 0.2, manifest_path="results/faces/ffpp/manifest.parquet")
    msg = str(err.value)
    assert "ffpp/NeuralTextures: 3/10 videos (30.0%)" in msg and "no face 3" in msg
    assert "results/faces/ffpp/manifest.parquet" in msg and "Deepfakes" not in msg

    with pytest.raises(ValueError, match="several shards"):
        faces.merge_manifests([ok, ok], 0.2)
    empty, summary = faces.merge_manifests([ok.iloc[0:0]], 0.2)
    assert len(empty) == 0 and len(summary) == 0
