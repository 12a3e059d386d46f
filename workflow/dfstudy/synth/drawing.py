"""Drawing the faces.

A face is a skin ellipse with radial shading, hair (three styles), ears, neck and shirt, eye whites
with iris and pupil, brows, a darker nose triangle and a mouth, drawn in a canonical "face layer"
and placed into the frame by a similarity transform (smooth translation, in-plane rotation within
+-12 degrees, scale; the face ellipse is 44-56 % of the frame height) over a textured room-like
background, then lightly blurred and given sensor noise. Identity = face aspect, skin tone, hair
colour/style/volume, eye colour/spacing/size, brows, nose, mouth. A video = identity + background +
head motion + expression track (talking mouth, blinks, brow raises, gaze). dlib's HOG detector
(face_recognition's default) finds these faces.
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4
SCALE = 1 << SHIFT


def _p(x, y):
    return (int(round(x * SCALE)), int(round(y * SCALE)))


def ellipse(img, c, ax, color, thick=-1, angle=0.0, start=0, end=360):
    cv2.ellipse(img, _p(*c), _p(max(ax[0], 0.3), max(ax[1], 0.3)), angle, start, end, color,
                thick, cv2.LINE_AA, SHIFT)


def _poly(img, pts, color):
    arr = np.round(np.asarray(pts, float) * SCALE).astype(np.int32)
    cv2.fillPoly(img, [arr], color, cv2.LINE_AA, SHIFT)


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
        both(ellipse, (cx, cy + 0.25 * b), (a * 1.22, b * 1.12), color=hair)
    both(ellipse, (cx, cy + 2.15 * b), (2.3 * a, 0.95 * b), color=shirt)
    both(_poly, [(cx - 0.42 * a, cy + 0.4 * b), (cx + 0.42 * a, cy + 0.4 * b),
                 (cx + 0.5 * a, cy + 1.45 * b), (cx - 0.5 * a, cy + 1.45 * b)], color=neck)
    for sx in (-1, 1):
        both(ellipse, (cx + sx * a * 0.98, cy - 0.02 * b), (0.14 * a, 0.2 * b), color=neck)
    both(ellipse, (cx, cy - (0.1 + vol) * b), (a * (1.04 + vol / 2), b * (0.95 + vol)),
         color=hair)
    both(ellipse, (cx, cy), (a, b), color=skin)
    if ident["hair_style"] == 2:  # fringe over the forehead, kept above the brows
        arc = cv2.ellipse2Poly((int(cx * SCALE), int(cy * SCALE)),
                               (int(a * SCALE), int(b * SCALE)), 0, 200, 340, 5).astype(float) / SCALE
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
        ellipse(out, (cx + sx * 0.45 * nw, ny - 0.02 * b), (0.22 * nw, 0.05 * b),
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
        ellipse(mask, (ex - x0, ey - y0), (ew, hh), 255)
        eye = np.full(roi.shape, 236, np.uint8)
        ic = (ex - x0 + gaze[0] * 0.35 * ew, ey - y0 + gaze[1] * 0.3 * eh)
        ellipse(eye, ic, (0.62 * eh, 0.62 * eh), ident["iris"])
        ellipse(eye, ic, (0.3 * eh, 0.3 * eh), (15, 12, 12))
        m = mask.astype(np.float32)[..., None] / 255
        roi[:] = (roi * (1 - m) + eye * m).astype(np.uint8)
        ellipse(img, (ex, ey), (ew, hh), lash, thick=max(1, round(s / 110)), start=180, end=360)
        # brow: an arc above the eye, raised with the expression
        side = -1 if k == 0 else 1
        by = ey - (ident["brow_gap"] + 0.08 * brow) * b
        pts = np.array([(ex - side * 1.05 * ew, by + 0.02 * b),
                        (ex, by - 0.05 * b),
                        (ex + side * 1.15 * ew, by + 0.04 * b + ident["brow_tilt"] * b)])
        cv2.polylines(img, [np.round(pts * SCALE).astype(np.int32)], False, ident["brow"],
                      max(1, round(ident["brow_thick"] * b)), cv2.LINE_AA, SHIFT)
    mx, my = g["mouth"]
    mw = g["mw"]
    ellipse(img, (mx, my + 0.05 * mouth * b), (mw, (0.05 + 0.12 * mouth) * b), ident["lip"])
    if mouth > 0.08:
        ellipse(img, (mx, my + 0.05 * mouth * b), (0.78 * mw, 0.11 * mouth * b), (30, 25, 55))
    else:
        cv2.line(img, _p(mx - mw, my), _p(mx + mw, my), (40, 30, 60), 1, cv2.LINE_AA, SHIFT)


class Face:
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


def affine(video: dict, t: int, s: int) -> np.ndarray:
    """Similarity transform taking face-layer coordinates to frame coordinates at frame t."""
    m = cv2.getRotationMatrix2D((s / 2, s / 2), float(video["rot"][t]), float(video["scale"][t]))
    m[0, 2] += video["cx"][t] - s / 2
    m[1, 2] += video["cy"][t] - s / 2
    return m


def composite(bg: np.ndarray, layer: np.ndarray, alpha: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = bg.shape[:2]
    lw = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR)
    aw = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None]
    aw /= 255
    return bg * (1 - aw) + lw.astype(np.float32) * aw


def camera(img: np.ndarray, video: dict, t: int, h: int) -> np.ndarray:
    """Optics blur and sensor noise; the noise of frame t is fixed by the video, not the call."""
    img = cv2.GaussianBlur(img, (0, 0), video["blur"] * h / 192)
    noise = np.random.default_rng([video["noise_seed"], t]).standard_normal(img.shape,
                                                                          dtype=np.float32)
    return img + 1.6 * noise
