"""Embedded synthetic face-video corpus that stands in for FaceForensics++, DFD and Celeb-DF v1/v2.

The real datasets are gated, so the workflow can generate a corpus of procedurally drawn talking
faces laid out FILE FOR FILE like the real releases; the workflow's dataset adapters read it
unchanged.  Layout under ``out_dir`` (names as in the real datasets)::

    FaceForensics++/original_sequences/youtube/c23/videos/000.mp4 ...    FF++ originals
    FaceForensics++/manipulated_sequences/<Method>/c23/videos/<t>_<s>.mp4
                           <Method>: Deepfakes, Face2Face, FaceSwap, NeuralTextures
    FaceForensics++/splits/{train,val,test}.json                         [[a, b], ...] id pairs
    FaceForensics++/original_sequences/actors/c23/videos/<aa>__<scene>.mp4          DFD real
    FaceForensics++/manipulated_sequences/DeepFakeDetection/c23/videos/
                           <aa>_<bb>__<scene>__<CODE8>.mp4                          DFD fake
    Celeb-DF-v2/Celeb-real/id<i>_<j:04d>.mp4, YouTube-real/<k:05d>.mp4,
                Celeb-synthesis/id<i>_id<j>_<k:04d>.mp4, List_of_testing_videos.txt
    Celeb-DF/   same layout (Celeb-DF v1, the study's CELEB-M)
    corpus.csv  (written by ``main``) and SYNTHETIC_CORPUS.json (marker: spec, seed, version)

As in the real data, ``<t>_<s>`` / ``id<i>_id<j>_<k>`` / ``<aa>_<bb>__...`` name the *target*
first (its video supplies background, head motion and, for swaps, expression) and the *source*
second (its identity supplies the face; for the reenactment methods Face2Face and NeuralTextures
it supplies the expression instead and the face stays the target's).  ``id<i>_id<j>_<k:04d>`` is
made from ``Celeb-real/id<i>_<k:04d>.mp4``; a DFD fake from ``<aa>__<scene>.mp4`` (all actors of a
scene share its background set).  In ``List_of_testing_videos.txt`` label 1 means REAL, as in the
real file; everywhere else (``corpus.csv``) label 1 = fake.

Rendering.  A face is a skin ellipse with radial shading, hair (three styles), ears, neck and
shirt, eye whites with iris and pupil, brows, a darker nose triangle and a mouth, drawn in a
canonical "face layer" and placed into the frame by a similarity transform (smooth translation,
in-plane rotation within +-12 degrees, scale; the face ellipse is 44-56 % of the frame height) over
a textured room-like background, then lightly blurred and given sensor noise.  Identity = face
aspect, skin tone, hair colour/style/volume, eye colour/spacing/size, brows, nose, mouth.  A video =
identity + background + head motion + expression track (talking mouth, blinks, brow raises,
gaze).  dlib's HOG detector (face_recognition's default) finds these faces.

One synthesis method per study dataset, each with its own artifact inside the face, applied to the
raw (noisy) target frames before the single mp4v encode, so real and fake share the rendering and
compression path:

=================  =======================  ===================================================
folder             study set                artifact
=================  =======================  ===================================================
FaceSwap           FS                       source's inner face pasted inside a convex landmark
                                            hull with a hard seam; its colour is matched to the
                                            target and then made lighter and warmer
Deepfakes          DF                       source face re-rendered at 1/3 resolution (area down,
                                            bilinear up), faint colour cast, soft elliptic blend
Face2Face          F2F                      target face, source expression; sinusoidal warp of the
                                            mouth region (and, at ~half strength, the eyes/brows)
NeuralTextures     NT                       target face, source expression; 2x2 nearest-neighbour
                                            blocks plus a checkerboard (period ~8 % of the face
                                            height) in the lower face
DeepFakeDetection  DFD                      source face with boosted contrast inside an elliptic
                                            mask, bright blending halo ring at its border
Celeb-synthesis    CELEB (Celeb-DF v2)      source face, colour-matched, feathered blend, plus a
                                            face-aligned oblique sinusoidal grating (period ~9 %
                                            of the face height, 30 degrees, +-16 grey levels)
Celeb-synthesis    CELEB-M (Celeb-DF v1)    the same family, refined: period x1.06, 33 degrees,
                                            amplitude x0.85, wider blend feathering
=================  =======================  ===================================================

The parameters were tuned by training a small Meso4-like CNN on 64x64 HOG face crops of a corpus
made with the default spec (seed 1234) and testing it on one made with another seed: each method
is learnt (frame accuracy about 0.96-1.00; DFD about 0.87 with its 16 real videos) while the
other methods stay near chance, except CELEB -> CELEB-M (about 0.9), as the study needs.
Everything survives the mp4v encode, which OpenCV runs at a fixed, fairly low bitrate.

Identities (``identities`` column, ``|``-joined, target first): ``ffpp:000``, ``dfd:01``,
``celebdf:id3`` for Celeb-DF v2 and ``celebdf1:id3`` for Celeb-DF v1.  The real v1 and v2 share
people; the synthetic v1 people are rendered from their own seed stream, so they are distinct
people and we namespace them ``celebdf1:`` to say so (v1 file names still use ``id0..`` as in the
real data).  YouTube-real videos show one unnamed person each, recorded as ``celebdf:yt00003``
(``celebdf1:yt..`` for v1).  Celeb-DF test-list identities (targets and sources) are disjoint from
all other identities of the same release; FF++ split pairs are identity-disjoint (each original in
exactly one pair).

Broken videos (``broken: true``, Celeb-DF YouTube-real, never in the test list), marked in the
``defect`` column of the returned table (empty for good videos):

- ``truncated``: a rendered video rewritten with the ``moov`` atom first (valid header announcing
  all frames), then cut inside ``mdat``: it opens, the first frames decode, the rest are missing;
- ``empty``: a zero-byte ``.mp4`` (cv2 cannot open it);
- ``faceless``: a normal video of background only.

Determinism.  Every random choice is drawn from ``numpy.random.SeedSequence`` built from the seed
and a SHA-256 of a name (identity key, video path, ...), never from Python's ``hash``; each video is
rendered independently, so the same spec and seed give byte-identical files for any thread count.
The content of a file depends only on the seed, frame settings and its own name (and those of the
target/source it is made from), not on the other entries of the spec.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SPEC", "synthesize_corpus", "main"]

DEFAULT_SPEC: dict = {
    "frame_size": [192, 192],  # width, height
    "frames_per_video": 20,
    "fps": 10,
    "ffpp": {"pairs": {"train": 14, "val": 3, "test": 3}},
    "dfd": {"actors": 8, "scenes": ["exit_phone_room", "walking_outside"], "fakes": 16},
    "celebdf_v2": {"identities": 16, "videos_per_identity": 3, "youtube_real": 8, "fakes": 56,
                   "test_identities": 4, "youtube_test": None, "broken": True},
    "celebdf_v1": {"identities": 8, "videos_per_identity": 2, "youtube_real": 0, "fakes": 16,
                   "test_identities": 8, "youtube_test": None, "broken": False},
}

COLUMNS = ["relpath", "source", "method", "label", "identities", "split", "defect"]
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
MARKER = "SYNTHETIC_CORPUS.json"
DATASET_DIRS = ("FaceForensics++", "Celeb-DF-v2", "Celeb-DF")
FFPP_ROOT = "FaceForensics++"
FFPP_ORIG = f"{FFPP_ROOT}/original_sequences/youtube/c23/videos"
DFD_ORIG = f"{FFPP_ROOT}/original_sequences/actors/c23/videos"
_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CELEB = {"celebdf_v2": ("Celeb-DF-v2", "celebdf", "celeb_v2"),
          "celebdf_v1": ("Celeb-DF", "celebdf1", "celeb_v1")}


# --------------------------------------------------------------------------------------------
# seeding

def _rng(seed: int, *names) -> np.random.Generator:
    """Generator for (seed, names): SHA-256 keeps it stable across processes and Python runs."""
    digest = hashlib.sha256("\x1f".join(str(n) for n in names).encode()).digest()
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF]
    words += list(struct.unpack("<8I", digest))
    return np.random.default_rng(np.random.SeedSequence(words))


# --------------------------------------------------------------------------------------------
# identities, videos, backgrounds

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


def _make_identity(seed: int, key: str) -> dict:
    """Face parameters of one person, in units of the face ellipse's half-axes."""
    r = _rng(seed, "identity", key)
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


def _make_expression(seed: int, key: str, n: int, fps: float) -> dict:
    """Per-frame mouth opening, eye openness, brow raise and gaze of one video."""
    r = _rng(seed, "expression", key)
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


def _make_video(seed: int, key: str, w: int, h: int, n: int, fps: float,
                scene: str | None = None) -> dict:
    """Background, shirt, head-motion track and noise stream of one (real or target) video."""
    r = _rng(seed, "video", key)
    if scene is None:
        bg = _make_background(r, w, h)
    else:
        # DFD: one set per scene, seen by every actor from a slightly different spot and exposure
        big = _make_background(_rng(seed, "scene", scene), w + w // 4, h + h // 8)
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


# --------------------------------------------------------------------------------------------
# drawing

_SH = 4
_F = 1 << _SH


def _p(x, y):
    return (int(round(x * _F)), int(round(y * _F)))


def _ellipse(img, c, ax, color, thick=-1, angle=0.0, start=0, end=360):
    cv2.ellipse(img, _p(*c), _p(max(ax[0], 0.3), max(ax[1], 0.3)), angle, start, end, color,
                thick, cv2.LINE_AA, _SH)


def _poly(img, pts, color):
    arr = np.round(np.asarray(pts, float) * _F).astype(np.int32)
    cv2.fillPoly(img, [arr], color, cv2.LINE_AA, _SH)


def _geometry(ident: dict, s: int) -> dict:
    """Canonical landmark geometry of a face in an s x s layer (face height = s / 2)."""
    cx, cy, b = s / 2, 0.52 * s, 0.25 * s
    a = ident["aspect"] * b
    ey = cy + ident["eye_y"] * b
    return {"cx": cx, "cy": cy, "a": a, "b": b, "ey": ey,
            "eyes": [(cx - ident["eye_dx"] * a, ey), (cx + ident["eye_dx"] * a, ey)],
            "ew": ident["eye_w"] * a, "eh": ident["eye_h"] * b,
            "mouth": (cx, cy + ident["mouth_y"] * b), "mw": ident["mouth_w"] * a,
            "nose_y": ey + ident["nose_len"] * b + 0.1 * b}


def _base_layer(ident: dict, shirt, light: float, s: int):
    """Static part of a face layer (hair, body, shaded skin, nose), its alpha and geometry."""
    g = _geometry(ident, s)
    cx, cy, a, b = g["cx"], g["cy"], g["a"], g["b"]
    img = np.zeros((s, s, 3), np.uint8)
    alpha = np.zeros((s, s), np.uint8)
    hair, skin = ident["hair"], ident["skin"]
    vol = ident["hair_volume"]
    neck = tuple(c * 0.82 for c in skin)

    def both(fn, *args, color):
        fn(img, *args, color)
        fn(alpha, *args, 255)

    if ident["hair_style"] == 1:  # long hair behind the head
        both(_ellipse, (cx, cy + 0.25 * b), (a * 1.22, b * 1.12), color=hair)
    both(_ellipse, (cx, cy + 2.15 * b), (2.3 * a, 0.95 * b), color=shirt)
    both(_poly, [(cx - 0.42 * a, cy + 0.4 * b), (cx + 0.42 * a, cy + 0.4 * b),
                 (cx + 0.5 * a, cy + 1.45 * b), (cx - 0.5 * a, cy + 1.45 * b)], color=neck)
    for sx in (-1, 1):
        both(_ellipse, (cx + sx * a * 0.98, cy - 0.02 * b), (0.14 * a, 0.2 * b), color=neck)
    both(_ellipse, (cx, cy - (0.1 + vol) * b), (a * (1.04 + vol / 2), b * (0.95 + vol)),
         color=hair)
    both(_ellipse, (cx, cy), (a, b), color=skin)
    if ident["hair_style"] == 2:  # fringe over the forehead, kept above the brows
        arc = cv2.ellipse2Poly((int(cx * _F), int(cy * _F)), (int(a * _F), int(b * _F)), 0,
                               200, 340, 5).astype(float) / _F
        low = cy - (0.62 + 0.05 * np.cos(np.linspace(0, 6 * np.pi, 9))) * b
        xs = np.linspace(arc[-1, 0], arc[0, 0], 9)
        _poly(img, np.concatenate([arc, np.stack([xs, low], 1)]), hair)

    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    r2 = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    shade = np.clip(1 - ident["shade"] * r2, 0.55, 1.05) * (1 + 0.08 * light * (xx - cx) / a)
    out = img.astype(np.float32) * shade[..., None]
    nose = np.zeros((s, s), np.uint8)
    ny, nw = g["nose_y"], ident["nose_w"] * a
    _poly(nose, [(cx, g["ey"] + 0.08 * b), (cx - nw, ny), (cx + nw, ny)], 255)
    out *= (1 - 0.2 * nose.astype(np.float32) / 255)[..., None]
    for sx in (-1, 1):
        _ellipse(out, (cx + sx * 0.45 * nw, ny - 0.02 * b), (0.22 * nw, 0.05 * b),
                 tuple(c * 0.45 for c in skin))
    return np.clip(out, 0, 255).astype(np.uint8), alpha, g


def _draw_features(img: np.ndarray, ident: dict, g: dict, mouth: float, eyes: float,
                   brow: float, gaze) -> None:
    """Expression-dependent features (eyes, brows, mouth) drawn onto a copy of the base layer."""
    s = img.shape[0]
    b, ew, eh = g["b"], g["ew"], g["eh"]
    lash = tuple(c * 0.35 for c in ident["brow"])
    for k, (ex, ey) in enumerate(g["eyes"]):
        hh = max(eh * eyes, 0.5)
        x0, x1 = int(ex - ew - 3), int(ex + ew + 4)
        y0, y1 = int(ey - eh - 3), int(ey + eh + 4)
        roi = img[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], np.uint8)
        _ellipse(mask, (ex - x0, ey - y0), (ew, hh), 255)
        eye = np.full(roi.shape, 236, np.uint8)
        ic = (ex - x0 + gaze[0] * 0.35 * ew, ey - y0 + gaze[1] * 0.3 * eh)
        _ellipse(eye, ic, (0.62 * eh, 0.62 * eh), ident["iris"])
        _ellipse(eye, ic, (0.3 * eh, 0.3 * eh), (15, 12, 12))
        m = mask.astype(np.float32)[..., None] / 255
        roi[:] = (roi * (1 - m) + eye * m).astype(np.uint8)
        _ellipse(img, (ex, ey), (ew, hh), lash, thick=max(1, round(s / 110)), start=180, end=360)
        # brow: an arc above the eye, raised with the expression
        side = -1 if k == 0 else 1
        by = ey - (ident["brow_gap"] + 0.08 * brow) * b
        pts = np.array([(ex - side * 1.05 * ew, by + 0.02 * b),
                        (ex, by - 0.05 * b),
                        (ex + side * 1.15 * ew, by + 0.04 * b + ident["brow_tilt"] * b)])
        cv2.polylines(img, [np.round(pts * _F).astype(np.int32)], False, ident["brow"],
                      max(1, round(ident["brow_thick"] * b)), cv2.LINE_AA, _SH)
    mx, my = g["mouth"]
    mw = g["mw"]
    _ellipse(img, (mx, my + 0.05 * mouth * b), (mw, (0.05 + 0.12 * mouth) * b), ident["lip"])
    if mouth > 0.08:
        _ellipse(img, (mx, my + 0.05 * mouth * b), (0.78 * mw, 0.11 * mouth * b), (30, 25, 55))
    else:
        cv2.line(img, _p(mx - mw, my), _p(mx + mw, my), (40, 30, 60), 1, cv2.LINE_AA, _SH)


class _Face:
    """A person rendered into one video's frames: cached base layer plus per-frame features."""

    def __init__(self, ident: dict, video: dict, s: int):
        self.ident = ident
        self.s = s
        self.base, self.alpha, self.g = _base_layer(ident, video["shirt"], video["light"], s)

    def layer(self, expr: dict, t: int) -> np.ndarray:
        img = self.base.copy()
        _draw_features(img, self.ident, self.g, expr["mouth"][t], expr["eyes"][t],
                       expr["brow"][t], expr["gaze"][t])
        return img


def _affine(video: dict, t: int, s: int) -> np.ndarray:
    """Similarity transform taking face-layer coordinates to frame coordinates at frame t."""
    m = cv2.getRotationMatrix2D((s / 2, s / 2), float(video["rot"][t]), float(video["scale"][t]))
    m[0, 2] += video["cx"][t] - s / 2
    m[1, 2] += video["cy"][t] - s / 2
    return m


def _composite(bg: np.ndarray, layer: np.ndarray, alpha: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = bg.shape[:2]
    lw = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR)
    aw = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None]
    aw /= 255
    return bg * (1 - aw) + lw.astype(np.float32) * aw


def _camera(img: np.ndarray, video: dict, t: int, h: int) -> np.ndarray:
    """Optics blur and sensor noise; the noise of frame t is fixed by the video, not the call."""
    img = cv2.GaussianBlur(img, (0, 0), video["blur"] * h / 192)
    noise = np.random.default_rng([video["noise_seed"], t]).standard_normal(img.shape,
                                                                          dtype=np.float32)
    return img + 1.6 * noise


# --------------------------------------------------------------------------------------------
# synthesis methods (artifacts); all work on float32 BGR frames

def _warp_mask(mask_c: np.ndarray, m: np.ndarray, w: int, h: int, feather: float) -> np.ndarray:
    out = cv2.warpAffine(mask_c, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    if feather > 0:
        out = cv2.GaussianBlur(out, (0, 0), feather)
    return out[..., None]


def _face_mask(g: dict, s: int, k: float = 0.92) -> np.ndarray:
    mc = np.zeros((s, s), np.uint8)
    _ellipse(mc, (g["cx"], g["cy"]), (k * g["a"], k * g["b"]), 255)
    return mc


def _canon_coords(m: np.ndarray, w: int, h: int):
    """Face-layer coordinates (u, v) of every frame pixel, for face-aligned periodic traces."""
    inv = cv2.invertAffineTransform(m)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2],
            inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2])


def _grating(m, w, h, period, angle_deg):
    u, v = _canon_coords(m, w, h)
    th = np.deg2rad(angle_deg)
    return np.sin(2 * np.pi * (u * np.cos(th) + v * np.sin(th)) / period)[..., None]


def _colour_match(x: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    wsum = mask.sum() + 1e-6
    mx = (x * mask).sum((0, 1)) / wsum
    mr = (ref * mask).sum((0, 1)) / wsum
    return x + (mr - mx)


class _Method:
    """Per-video parameters of one synthesis method; ``apply`` makes one fake frame."""

    swap = True          # the source supplies the face (else the target keeps it)
    source_expression = False

    def __init__(self, r: np.random.Generator, s: int):
        self.r = r
        self.s = s


class _FaceSwap(_Method):
    def __init__(self, r, s):
        super().__init__(r, s)
        # the pasted skin comes out lighter and warmer than the surrounding face (BGR offsets,
        # added after matching the source's mean colour to the target, so the seam never vanishes
        # by chance when the two skin tones happen to differ by the opposite amount)
        self.shift = np.array([r.uniform(-3, 10), r.uniform(13, 22), r.uniform(26, 38)])

    def apply(self, real, fake, ctx):
        g, gs, s = ctx["g"], ctx["gs"], self.s
        cx, cy, a, b = g["cx"], g["cy"], g["a"], g["b"]
        (lx, ey), (rx, _) = g["eyes"]
        pts = [(lx - 1.2 * g["ew"], ey - 0.3 * b), (rx + 1.2 * g["ew"], ey - 0.3 * b),
               (cx + 0.8 * a, cy + 0.2 * b), (cx + 0.5 * a, cy + 0.72 * b),
               (cx, cy + 0.86 * b), (cx - 0.5 * a, cy + 0.72 * b), (cx - 0.8 * a, cy + 0.2 * b)]
        mc = np.zeros((s, s), np.uint8)
        cv2.fillConvexPoly(mc, np.round(cv2.convexHull(np.float32(pts)).reshape(-1, 2) * _F)
                           .astype(np.int32), 255, cv2.LINE_8, _SH)
        mc = np.minimum(mc, _face_mask(gs, s, 0.97))
        h, w = real.shape[:2]
        mk = _warp_mask(mc, ctx["m"], w, h, 0.0)
        return real * (1 - mk) + (_colour_match(fake, real, mk) + self.shift) * mk


class _Deepfakes(_Method):
    def __init__(self, r, s):
        super().__init__(r, s)
        self.cast = r.uniform(-1, 1, 3) * 4

    def apply(self, real, fake, ctx):
        h, w = real.shape[:2]
        small = cv2.resize(fake, (max(w // 3, 1), max(h // 3, 1)), interpolation=cv2.INTER_AREA)
        low = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + self.cast
        mc = np.minimum(_face_mask(ctx["g"], self.s, 0.92), _face_mask(ctx["gs"], self.s, 0.97))
        mk = _warp_mask(mc, ctx["m"], w, h, 0.03 * h)
        return real * (1 - mk) + low * mk


class _Face2Face(_Method):
    swap = False
    source_expression = True

    def __init__(self, r, s):
        super().__init__(r, s)
        self.phase = r.uniform(0, 2 * np.pi, 2)
        self.amp = r.uniform(0.044, 0.056) * 0.5 * s   # of the face height
        self.period = r.uniform(0.16, 0.2) * 0.5 * s

    def apply(self, real, fake, ctx):
        g, s = ctx["g"], self.s
        h, w = real.shape[:2]
        mc = np.zeros((s, s), np.uint8)
        mx, my = g["mouth"]
        _ellipse(mc, (mx, my + 0.05 * g["b"]), (1.35 * g["mw"], 0.3 * g["b"]), 255)
        for ex, ey in g["eyes"]:  # eyes warp less: a mangled eye region hides the face from HOG
            _ellipse(mc, (ex, ey - 0.08 * g["b"]), (1.5 * g["ew"], 2.6 * g["eh"]), 140)
        mk = _warp_mask(mc, ctx["m"], w, h, 0.02 * h)[..., 0]
        u, v = _canon_coords(ctx["m"], w, h)
        sc = float(np.hypot(*ctx["m"][:, 0]))
        amp = self.amp * sc
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dx = amp * np.sin(2 * np.pi * v / self.period + self.phase[0]) * mk
        dy = amp * np.sin(2 * np.pi * u / self.period + self.phase[1]) * mk
        warped = cv2.remap(fake, (xx + dx).astype(np.float32), (yy + dy).astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return warped


class _NeuralTextures(_Method):
    swap = False
    source_expression = True

    def __init__(self, r, s):
        super().__init__(r, s)
        self.amp = r.uniform(9, 13)
        self.period = r.uniform(0.075, 0.09) * 0.5 * s

    def apply(self, real, fake, ctx):
        g, s = ctx["g"], self.s
        h, w = real.shape[:2]
        mc = np.zeros((s, s), np.uint8)
        _ellipse(mc, (g["cx"], g["cy"] + 0.55 * g["b"]), (0.62 * g["a"], 0.36 * g["b"]), 255)
        mk = _warp_mask(mc, ctx["m"], w, h, 0.015 * h)
        blocks = cv2.resize(cv2.resize(fake, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                            (w, h), interpolation=cv2.INTER_NEAREST)
        u, v = _canon_coords(ctx["m"], w, h)
        cell = self.period / 2
        checker = (((np.floor(u / cell) + np.floor(v / cell)) % 2) * 2 - 1)[..., None]
        return fake * (1 - mk) + (blocks + self.amp * checker) * mk


class _DeepFakeDetection(_Method):
    # no sharpening: an unsharp mask adds the same kind of high-frequency face texture that the
    # Celeb-DF trace is, and made CELEB detectors fire on DFD
    def __init__(self, r, s):
        super().__init__(r, s)
        self.contrast = r.uniform(1.3, 1.45)
        self.ring = r.uniform(22, 32)

    def apply(self, real, fake, ctx):
        h, w = real.shape[:2]
        mc = np.minimum(_face_mask(ctx["g"], self.s, 0.93), _face_mask(ctx["gs"], self.s, 0.97))
        mk = _warp_mask(mc, ctx["m"], w, h, 0.008 * h)
        mean = (fake * mk).sum((0, 1)) / (mk.sum() + 1e-6)
        punchy = mean + self.contrast * (fake - mean)
        ring = 4 * mk * (1 - mk)
        return real * (1 - mk) + punchy * mk + self.ring * ring


class _Celeb(_Method):
    # blend feather stays well outside the eyes and mouth (no ghosted features); the trace has
    # its own mask so it covers the whole face at full strength
    period_frac, angle, amp, feather = 0.09, 30.0, 16.0, 0.025

    def __init__(self, r, s):
        super().__init__(r, s)
        self.period = self.period_frac * 0.5 * s * r.uniform(0.96, 1.04)
        self.theta = self.angle + r.uniform(-3, 3)

    def apply(self, real, fake, ctx):
        h, w = real.shape[:2]
        g, gs, s = ctx["g"], ctx["gs"], self.s
        mc = np.minimum(_face_mask(g, s, 0.92), _face_mask(gs, s, 0.97))
        mk = _warp_mask(mc, ctx["m"], w, h, self.feather * h)
        mt = _warp_mask(np.minimum(_face_mask(g, s, 0.88), _face_mask(gs, s, 0.92)), ctx["m"],
                        w, h, 0.02 * h)
        fake = _colour_match(fake, real, mk)
        trace = self.amp * _grating(ctx["m"], w, h, self.period, self.theta)
        return real * (1 - mk) + fake * mk + trace * mt


class _CelebV1(_Celeb):
    period_frac, angle, amp, feather = 0.09 * 1.06, 33.0, 16.0 * 0.85, 0.04


_METHODS = {"Deepfakes": _Deepfakes, "Face2Face": _Face2Face, "FaceSwap": _FaceSwap,
            "NeuralTextures": _NeuralTextures, "DeepFakeDetection": _DeepFakeDetection,
            "celeb_v2": _Celeb, "celeb_v1": _CelebV1}


# --------------------------------------------------------------------------------------------
# one video

def _render_frames(job: dict, seed: int, w: int, h: int, n: int, fps: float) -> list[np.ndarray]:
    s = h
    video = _make_video(seed, job["video"], w, h, n, fps, job.get("scene"))
    frames = []
    if job["kind"] == "faceless":
        return [np.clip(_camera(video["bg"].copy(), video, t, h), 0, 255).astype(np.uint8)
                for t in range(n)]
    target = _Face(_make_identity(seed, job["tgt_id"]), video, s)
    expr_t = _make_expression(seed, job["video"], n, fps)
    method = None
    if job.get("method_key"):
        cls = _METHODS[job["method_key"]]
        method = cls(_rng(seed, "method", job["relpath"]), s)
        expr_f = _make_expression(seed, job["expr"], n, fps) if cls.source_expression else expr_t
        face_f = _Face(_make_identity(seed, job["src_id"]), video, s) if cls.swap else target
    for t in range(n):
        m = _affine(video, t, s)
        real = _camera(_composite(video["bg"], target.layer(expr_t, t), target.alpha, m),
                       video, t, h)
        if method is None:
            out = real
        else:
            fake = _camera(_composite(video["bg"], face_f.layer(expr_f, t), face_f.alpha, m),
                           video, t, h)
            out = method.apply(real, fake, {"m": m, "g": target.g, "gs": face_f.g})
        frames.append(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    return frames


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape[:2]
    tmp = path.with_name(path.stem + ".part.mp4")  # the muxer picks the container by extension
    vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cv2.VideoWriter (mp4v) could not open {tmp}")
    for f in frames:
        vw.write(f)
    vw.release()
    os.replace(tmp, path)


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack(">I4s", data[pos:pos + 8])
        hdr = 8
        if size == 1:
            size, hdr = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield typ.decode("latin-1"), pos, hdr, size
        pos += size


def _moov_first(data: bytes) -> tuple[bytes, int]:
    """Rewrite an mp4 with ``moov`` before ``mdat`` (chunk offsets patched); return it and the
    offset where ``mdat``'s payload starts in the new file."""
    top = {t: (p, hd, sz) for t, p, hd, sz in _boxes(data, 0, len(data))}
    mp, _, msz = top["moov"]
    dp, dhdr, _ = top["mdat"]
    if mp < dp:
        return data, dp + dhdr
    moov = bytearray(data[mp:mp + msz])
    shift = msz

    def patch(start, end):
        for typ, p, hd, sz in _boxes(moov, start, end):
            if typ in ("trak", "mdia", "minf", "stbl", "edts", "dinf"):
                patch(p + hd, p + sz)
            elif typ in ("stco", "co64"):
                cnt = struct.unpack(">I", moov[p + hd + 4:p + hd + 8])[0]
                fmt, width = (">I", 4) if typ == "stco" else (">Q", 8)
                for i in range(cnt):
                    q = p + hd + 8 + i * width
                    struct.pack_into(fmt, moov, q, struct.unpack(fmt, moov[q:q + width])[0] + shift)

    patch(8, len(moov))
    return data[:dp] + bytes(moov) + data[dp:mp] + data[mp + msz:], dp + msz + dhdr


def _render_job(args) -> dict:
    job, seed, w, h, n, fps, root = args
    path = Path(root) / job["relpath"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if job["kind"] == "empty":
        path.write_bytes(b"")
    else:
        _write_mp4(path, _render_frames(job, seed, w, h, n, fps), fps)
        if job["kind"] == "truncated":
            data, payload = _moov_first(path.read_bytes())
            cut = payload + int(0.35 * (len(data) - payload))
            path.write_bytes(data[:cut])
    return {k: job[k] for k in COLUMNS}


def _init_worker():
    cv2.setNumThreads(1)


# --------------------------------------------------------------------------------------------
# layout

def _merge_spec(spec: dict | None) -> dict:
    out = copy.deepcopy(DEFAULT_SPEC)
    for key, val in (spec or {}).items():
        if key not in out:
            raise ValueError(f"unknown spec key {key!r}; known: {sorted(out)}")
        if isinstance(out[key], dict) and isinstance(val, dict):
            for k2, v2 in val.items():
                if k2 not in out[key]:
                    raise ValueError(f"unknown spec key {key}.{k2}; known: {sorted(out[key])}")
                if isinstance(out[key][k2], dict) and isinstance(v2, dict):
                    out[key][k2].update(v2)
                else:
                    out[key][k2] = v2
        else:
            out[key] = val  # None / False drops a dataset
    return out


def _row(relpath, source, method, label, identities, split, defect="", **job):
    job.update(relpath=relpath, source=source, method=method, label=int(label),
               identities="|".join(identities), split=split, defect=defect)
    return job


def _ffpp_jobs(cfg: dict, seed: int) -> tuple[list[dict], dict]:
    counts = {k: int(cfg["pairs"].get(k, 0)) for k in ("train", "val", "test")}
    n_ids = 2 * sum(counts.values())
    ids = [f"{i:03d}" for i in _rng(seed, "ffpp", "pairs").permutation(n_ids)]
    pairs = [[ids[2 * i], ids[2 * i + 1]] for i in range(n_ids // 2)]
    splits, i = {}, 0
    for name in ("train", "val", "test"):
        splits[name] = pairs[i:i + counts[name]]
        i += counts[name]
    orig = lambda v: f"{FFPP_ORIG}/{v}.mp4"  # noqa: E731
    jobs = []
    for name, plist in splits.items():
        for a, b in plist:
            for v in (a, b):
                jobs.append(_row(orig(v), "ffpp", "youtube", 0, [f"ffpp:{v}"], name,
                                 kind="real", video=orig(v), tgt_id=f"ffpp:{v}"))
            for t, s_ in ((a, b), (b, a)):
                for meth in FFPP_METHODS:
                    rel = f"{FFPP_ROOT}/manipulated_sequences/{meth}/c23/videos/{t}_{s_}.mp4"
                    jobs.append(_row(rel, "ffpp", meth, 1, [f"ffpp:{t}", f"ffpp:{s_}"], name,
                                     kind="fake", video=orig(t), tgt_id=f"ffpp:{t}",
                                     src_id=f"ffpp:{s_}", expr=orig(s_), method_key=meth))
    return jobs, splits


def _dfd_jobs(cfg: dict, seed: int) -> list[dict]:
    actors = [f"{i + 1:02d}" for i in range(int(cfg["actors"]))]
    scenes = list(cfg["scenes"])
    jobs, reals = [], []
    for aa in actors:
        for sc in scenes:
            rel = f"{DFD_ORIG}/{aa}__{sc}.mp4"
            reals.append((aa, sc, rel))
            jobs.append(_row(rel, "dfd", "actors", 0, [f"dfd:{aa}"], "", kind="real", video=rel,
                             tgt_id=f"dfd:{aa}", scene=sc))
    n_fakes = int(cfg["fakes"]) if len(actors) > 1 else 0
    r = _rng(seed, "dfd", "fakes")
    order = [reals[i] for i in r.permutation(len(reals))] if reals else []
    names = set()
    for i in range(n_fakes):
        aa, sc, rel_t = order[i % len(order)]
        bb = r.choice([x for x in actors if x != aa])
        while True:
            code = "".join(r.choice(list(_CODE_ALPHABET), 8))
            rel = (f"{FFPP_ROOT}/manipulated_sequences/DeepFakeDetection/c23/videos/"
                   f"{aa}_{bb}__{sc}__{code}.mp4")
            if rel not in names:
                break
        names.add(rel)
        jobs.append(_row(rel, "dfd", "DeepFakeDetection", 1, [f"dfd:{aa}", f"dfd:{bb}"], "",
                         kind="fake", video=rel_t, tgt_id=f"dfd:{aa}", src_id=f"dfd:{bb}",
                         expr=rel_t, scene=sc, method_key="DeepFakeDetection"))
    return jobs


def _celeb_jobs(cfg: dict, seed: int, which: str) -> tuple[list[dict], list[str]]:
    root, ns, method_key = _CELEB[which]
    n_id, vpi = int(cfg["identities"]), int(cfg["videos_per_identity"])
    n_test = min(int(cfg["test_identities"]), n_id)
    r = _rng(seed, which, "layout")
    perm = [int(x) for x in r.permutation(n_id)]
    groups = [sorted(perm[:n_test]), sorted(perm[n_test:])]  # test list, the rest
    jobs, test_list = [], []

    def real_rel(i, k):
        return f"{root}/Celeb-real/id{i}_{k:04d}.mp4"

    for gi, grp in enumerate(groups):
        for i in grp:
            for k in range(vpi):
                jobs.append(_row(real_rel(i, k), which, "Celeb-real", 0, [f"{ns}:id{i}"],
                                 "test" if gi == 0 else "", kind="real", video=real_rel(i, k),
                                 tgt_id=f"{ns}:id{i}"))
    # fakes: shared between the two identity groups in proportion to their size, within capacity
    n_fakes = int(cfg["fakes"])
    cap = [len(g) * (len(g) - 1) * vpi for g in groups]
    want = [0, 0]
    if sum(cap):
        share = [len(g) if c else 0 for g, c in zip(groups, cap)]
        want[0] = min(cap[0], int(round(n_fakes * share[0] / max(sum(share), 1))))
        want[1] = min(cap[1], n_fakes - want[0])
        want[0] = min(cap[0], n_fakes - want[1])
    if sum(want) < n_fakes:
        log.warning("%s: only %d of %d fakes fit the identities", which, sum(want), n_fakes)
    for gi, grp in enumerate(groups):
        targets = [(i, k) for i in grp for k in range(vpi)]
        targets = [targets[j] for j in r.permutation(len(targets))] if targets else []
        made, j = set(), 0
        while len(made) < want[gi]:
            i, k = targets[j % len(targets)]
            j += 1
            src = int(r.choice([x for x in grp if x != i]))
            if (i, src, k) in made:
                continue
            made.add((i, src, k))
            rel = f"{root}/Celeb-synthesis/id{i}_id{src}_{k:04d}.mp4"
            jobs.append(_row(rel, which, "Celeb-synthesis", 1, [f"{ns}:id{i}", f"{ns}:id{src}"],
                             "test" if gi == 0 else "", kind="fake", video=real_rel(i, k),
                             tgt_id=f"{ns}:id{i}", src_id=f"{ns}:id{src}", expr=real_rel(i, k),
                             method_key=method_key))
    n_yt = int(cfg["youtube_real"])
    n_yt_test = cfg.get("youtube_test")
    n_yt_test = (n_yt + 1) // 2 if n_yt_test is None else min(int(n_yt_test), n_yt)
    yt_test = set(int(x) for x in r.permutation(n_yt)[:n_yt_test]) if n_yt else set()
    for k in range(n_yt):
        rel = f"{root}/YouTube-real/{k:05d}.mp4"
        jobs.append(_row(rel, which, "YouTube-real", 0, [f"{ns}:yt{k:05d}"],
                         "test" if k in yt_test else "", kind="real", video=rel,
                         tgt_id=f"{ns}:yt{k:05d}"))
    if cfg.get("broken"):
        for j, defect in enumerate(("truncated", "empty", "faceless")):
            k = n_yt + j
            rel = f"{root}/YouTube-real/{k:05d}.mp4"
            ids = [f"{ns}:yt{k:05d}"] if defect == "truncated" else []
            jobs.append(_row(rel, which, "YouTube-real", 0, ids, "", defect, kind=defect,
                             video=rel, tgt_id=f"{ns}:yt{k:05d}"))
    for jb in jobs:
        if jb["split"] == "test":
            test_list.append(f"{1 - jb['label']} {jb['relpath'][len(root) + 1:]}")
    return jobs, sorted(test_list, key=lambda x: x.split(" ", 1)[1])


def _prepare_out(out: Path, spec: dict, seed: int) -> None:
    """Refuse to touch a tree we did not write (it may be the real data); clear our own."""
    out.mkdir(parents=True, exist_ok=True)
    present = [d for d in DATASET_DIRS if (out / d).exists()]
    if present and not (out / MARKER).exists():
        raise FileExistsError(f"{out} holds {present} but no {MARKER}: not a synthetic corpus, "
                              "refusing to overwrite it")
    for d in present:
        shutil.rmtree(out / d)
    for f in ("corpus.csv", MARKER):
        (out / f).unlink(missing_ok=True)
    from dfstudy import __version__

    (out / MARKER).write_text(json.dumps({"generator": "dfstudy.synth", "version": __version__,
                                          "seed": seed, "spec": spec}, indent=1,
                                         sort_keys=True) + "\n")


def synthesize_corpus(out_dir, spec: dict | None = None, seed: int = 1234,
                      threads: int = 1) -> pd.DataFrame:
    """Write the synthetic corpus under ``out_dir`` and return its video table.

    Parameters
    ----------
    out_dir : str or Path
        Corpus root. Dataset folders already there are replaced if ``out_dir`` carries this
        module's marker file, otherwise a ``FileExistsError`` is raised.
    spec : dict, optional
        Overrides of :data:`DEFAULT_SPEC` (nested dicts merge; unknown keys raise
        ``ValueError``). A dataset key set to ``None``/``False`` is not generated.
    seed : int
        Master seed; the same spec and seed give byte-identical files.
    threads : int
        Worker processes (videos are rendered independently; bytes do not depend on this).

    Returns
    -------
    pandas.DataFrame
        One row per written video, sorted by ``relpath``: ``relpath`` (relative to ``out_dir``),
        ``source`` (ffpp, dfd, celebdf_v2, celebdf_v1), ``method`` (the folder: youtube, actors,
        Celeb-real, YouTube-real for real videos; Deepfakes, Face2Face, FaceSwap, NeuralTextures,
        DeepFakeDetection, Celeb-synthesis for fakes), ``label`` (1 = fake), ``identities``
        (namespaced, ``|``-joined, target first), ``split`` (FF++ official split; ``test`` for
        Celeb-DF test-list videos; else empty) and ``defect`` (truncated, empty, faceless, or
        empty string).
    """
    from tqdm import tqdm

    spec = _merge_spec(spec)
    out = Path(out_dir)
    w, h = (int(v) for v in spec["frame_size"])
    n, fps = int(spec["frames_per_video"]), float(spec["fps"])
    _prepare_out(out, spec, seed)

    jobs = []
    if spec.get("ffpp"):
        fj, splits = _ffpp_jobs(spec["ffpp"], seed)
        jobs += fj
        sdir = out / FFPP_ROOT / "splits"
        sdir.mkdir(parents=True, exist_ok=True)
        for name, plist in splits.items():
            (sdir / f"{name}.json").write_text(json.dumps(plist) + "\n")
    if spec.get("dfd"):
        jobs += _dfd_jobs(spec["dfd"], seed)
    for which in ("celebdf_v2", "celebdf_v1"):
        if spec.get(which):
            cj, test_list = _celeb_jobs(spec[which], seed, which)
            jobs += cj
            (out / _CELEB[which][0]).mkdir(parents=True, exist_ok=True)
            (out / _CELEB[which][0] / "List_of_testing_videos.txt").write_text(
                "".join(line + "\n" for line in test_list))
    rels = [j["relpath"] for j in jobs]
    if len(set(rels)) != len(rels):
        raise AssertionError("duplicate video names in the corpus layout")

    log.info("rendering %d videos (%dx%d, %d frames) with %d worker(s)", len(jobs), w, h, n,
             threads)
    tasks = [(j, seed, w, h, n, fps, str(out)) for j in jobs]
    bar = tqdm(total=len(tasks), desc="synth", unit="video", file=sys.stderr, mininterval=1.0)
    rows = []
    if threads > 1:
        ctx = multiprocessing.get_context("spawn")  # fork after cv2/BLAS threads can deadlock
        with ctx.Pool(threads, initializer=_init_worker) as pool:
            for row in pool.imap_unordered(_render_job, tasks, chunksize=2):
                rows.append(row)
                bar.update()
    else:
        for task in tasks:
            rows.append(_render_job(task))
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("relpath", ignore_index=True)


def _load_spec(args) -> dict | None:
    if args.spec_json:
        return json.loads(args.spec_json)
    if args.spec_file:
        text = Path(args.spec_file).read_text()
        if args.spec_file.endswith(".json"):
            return json.loads(text)
        import yaml
        return yaml.safe_load(text)
    return None


def main(argv=None) -> None:
    """CLI: ``python -m dfstudy.synth --out results/corpus --spec-json '{...}' --seed 1234``."""
    ap = argparse.ArgumentParser(prog="python -m dfstudy.synth", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="corpus root (gets corpus.csv)")
    grp = ap.add_mutually_exclusive_group()
    grp.add_argument("--spec-json", help="spec as a JSON string (overrides of the defaults)")
    grp.add_argument("--spec-file", help="spec as a YAML or JSON file")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    df = synthesize_corpus(args.out, _load_spec(args), args.seed, args.threads)
    df.to_csv(Path(args.out) / "corpus.csv", index=False, lineterminator="\n")
    log.info("wrote %d videos and %s", len(df), Path(args.out) / "corpus.csv")


if __name__ == "__main__":
    main()
