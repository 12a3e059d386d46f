"""The random draws of a video: a person's face parameters, an expression track, a room-like
background and head motion (no drawing here; see :mod:`dfstudy.synth.drawing`)."""

from __future__ import annotations

import cv2
import numpy as np

from dfstudy.synth.seeding import rng

# palettes in RGB; converted to BGR when drawn
_SKIN = np.array([[238, 204, 180], [224, 180, 145], [198, 148, 110], [168, 118, 82],
                  [130, 88, 60], [96, 64, 45]], float)
_HAIR = np.array([[28, 24, 22], [70, 46, 30], [115, 80, 45], [196, 160, 100], [150, 62, 30],
                  [140, 138, 135]], float)
_IRIS = np.array([[85, 55, 30], [60, 100, 160], [70, 115, 75], [105, 115, 125], [40, 28, 20]],
                 float)


def _bgr(rgb) -> tuple:
    r, g, b = (float(v) for v in rgb)
    return (float(np.clip(b, 0, 255)), float(np.clip(g, 0, 255)), float(np.clip(r, 0, 255)))


def make_identity(seed: int, key: str) -> dict:
    """Face parameters of one person, in units of the face ellipse's half-axes."""
    r = rng(seed, "identity", key)
    t = r.uniform(0, len(_SKIN) - 1)
    i = int(t)
    skin = _SKIN[i] * (1 - (t - i)) + _SKIN[min(i + 1, len(_SKIN) - 1)] * (t - i)
    skin = skin + r.normal(0, 5, 3)
    hair = _HAIR[r.integers(len(_HAIR))] + r.normal(0, 8, 3)
    iris = _IRIS[r.integers(len(_IRIS))] + r.normal(0, 6, 3)
    lip = skin * np.array([0.85, 0.55, 0.55]) + np.array([25, 0, 0]) + r.normal(0, 5, 3)
    return {
        "aspect": r.uniform(0.74, 0.86),
        "skin": _bgr(skin), "hair": _bgr(hair), "iris": _bgr(iris), "lip": _bgr(lip),
        # brows always clearly darker than the skin (blond brows on dark skin defeat HOG)
        "brow": _bgr(np.minimum(hair * 0.55, skin * 0.45) + r.normal(0, 4, 3)),
        "hair_style": int(r.integers(3)), "hair_volume": r.uniform(0.06, 0.15),
        "eye_dx": r.uniform(0.36, 0.45), "eye_y": r.uniform(-0.16, -0.07),
        "eye_w": r.uniform(0.17, 0.22), "eye_h": r.uniform(0.075, 0.095),
        "brow_gap": r.uniform(0.13, 0.19), "brow_thick": r.uniform(0.03, 0.05),
        "brow_tilt": r.uniform(-0.04, 0.04),
        "nose_len": r.uniform(0.30, 0.40), "nose_w": r.uniform(0.11, 0.17),
        "mouth_w": r.uniform(0.27, 0.38), "mouth_y": r.uniform(0.50, 0.57),
        "shade": r.uniform(0.18, 0.28),
    }


def make_expression(seed: int, key: str, n: int, fps: float) -> dict:
    """Per-frame mouth opening, eye openness, brow raise and gaze of one video."""
    r = rng(seed, "expression", key)
    tt = np.arange(n) / fps
    talk = r.uniform(0.3, 1.0)
    m = sum(r.uniform(0.3, 0.6) * np.sin(2 * np.pi * r.uniform(0.6, 2.2) * tt + r.uniform(0, 6.3))
            for _ in range(2))
    mouth = np.clip(0.25 + talk * m, 0, 1)
    eyes = np.ones(n)
    eyes[r.random(n) < 0.07] = 0.12
    brow = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * r.uniform(0.1, 0.5) * tt + r.uniform(0, 6.3))
                   * r.uniform(0.2, 1.0), 0, 1)
    gx = 0.6 * np.sin(2 * np.pi * r.uniform(0.05, 0.3) * tt + r.uniform(0, 6.3)) * r.uniform(0, 1)
    gy = r.uniform(-0.2, 0.2) * np.ones(n)
    return {"mouth": mouth, "eyes": eyes, "brow": brow, "gaze": np.stack([gx, gy], 1)}


def _make_background(r: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Room-like textured background (float32 BGR): smooth colour field, walls/doors, fine grain."""
    base = r.uniform(40, 200, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    low = cv2.resize(r.normal(0, 28, (4, 4, 3)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    img += low
    for _ in range(int(r.integers(2, 6))):
        x0, y0 = r.uniform(-0.2, 1.0) * w, r.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + r.uniform(0.1, 0.6) * w, y0 + r.uniform(0.1, 0.8) * h
        col = np.clip(base + r.normal(0, 45, 3), 0, 255)
        a = r.uniform(0.4, 0.9)
        xa, xb = int(max(x0, 0)), int(min(x1, w))
        ya, yb = int(max(y0, 0)), int(min(y1, h))
        if xb > xa and yb > ya:
            img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a) + col * a
    if r.random() < 0.6:  # floor line
        y = int(r.uniform(0.6, 0.9) * h)
        img[y:] = img[y:] * 0.6 + np.clip(base * r.uniform(0.4, 0.9), 0, 255) * 0.4
    mid = cv2.resize(r.normal(0, 7, (max(h // 5, 2), max(w // 5, 2), 3)).astype(np.float32),
                     (w, h), interpolation=cv2.INTER_LINEAR)
    img += mid
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def make_video(seed: int, key: str, w: int, h: int, n: int, fps: float,
               scene: str | None = None) -> dict:
    """Background, shirt, head-motion track and noise stream of one (real or target) video."""
    r = rng(seed, "video", key)
    if scene is None:
        bg = _make_background(r, w, h)
    else:
        # DFD: one set per scene, seen by every actor from a slightly different spot and exposure
        big = _make_background(rng(seed, "scene", scene), w + w // 4, h + h // 8)
        ox, oy = int(r.integers(0, w // 4 + 1)), int(r.integers(0, h // 8 + 1))
        bg = big[oy:oy + h, ox:ox + w] * r.uniform(0.85, 1.15) + r.normal(0, 6, 3)
        bg = np.ascontiguousarray(bg, np.float32)
    tt = np.arange(n) / fps

    def wave(amp, fmin, fmax):
        return amp * np.sin(2 * np.pi * r.uniform(fmin, fmax) * tt + r.uniform(0, 6.3))

    cx = w / 2 + r.uniform(-0.07, 0.07) * w + wave(r.uniform(0, 0.05) * w, 0.1, 0.6)
    cy = h / 2 + r.uniform(-0.04, 0.04) * h + wave(r.uniform(0, 0.03) * h, 0.1, 0.6)
    rot = r.uniform(-5, 5) + wave(r.uniform(0, 7), 0.1, 0.5)
    scale = r.uniform(0.9, 1.08) * (1 + wave(0.03, 0.1, 0.5))
    return {"bg": bg, "shirt": _bgr(r.uniform(20, 230, 3)), "light": r.uniform(-1, 1),
            "cx": cx, "cy": cy, "rot": np.clip(rot, -12, 12), "scale": scale,
            "noise_seed": int(r.integers(2 ** 63)), "blur": r.uniform(0.55, 0.8)}
