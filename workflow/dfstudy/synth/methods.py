"""The manipulation methods. One per study dataset, each with its own artifact inside the face, applied
to the raw (noisy) target frames before the single mp4v encode, so real and fake share the rendering
and compression path:

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
Everything survives the mp4v encode, which OpenCV runs at a fixed, fairly low bitrate.  All methods work on float32 BGR frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from dfstudy.synth.drawing import SCALE, SHIFT, ellipse


def _warp_mask(mask_c: np.ndarray, m: np.ndarray, w: int, h: int, feather: float) -> np.ndarray:
    out = cv2.warpAffine(mask_c, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    if feather > 0:
        out = cv2.GaussianBlur(out, (0, 0), feather)
    return out[..., None]


def _face_mask(g: dict, s: int, k: float = 0.92) -> np.ndarray:
    mc = np.zeros((s, s), np.uint8)
    ellipse(mc, (g["cx"], g["cy"]), (k * g["a"], k * g["b"]), 255)
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
        cv2.fillConvexPoly(mc, np.round(cv2.convexHull(np.float32(pts)).reshape(-1, 2) * SCALE)
                           .astype(np.int32), 255, cv2.LINE_8, SHIFT)
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
        ellipse(mc, (mx, my + 0.05 * g["b"]), (1.35 * g["mw"], 0.3 * g["b"]), 255)
        for ex, ey in g["eyes"]:  # eyes warp less: a mangled eye region hides the face from HOG
            ellipse(mc, (ex, ey - 0.08 * g["b"]), (1.5 * g["ew"], 2.6 * g["eh"]), 140)
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
        ellipse(mc, (g["cx"], g["cy"] + 0.55 * g["b"]), (0.62 * g["a"], 0.36 * g["b"]), 255)
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


METHODS = {"Deepfakes": _Deepfakes, "Face2Face": _Face2Face, "FaceSwap": _FaceSwap,
           "NeuralTextures": _NeuralTextures, "DeepFakeDetection": _DeepFakeDetection,
           "celeb_v2": _Celeb, "celeb_v1": _CelebV1}
