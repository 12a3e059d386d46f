"""One video: render its frames (real, or a target made fake by its method), encode them as mp4v,
and break it on purpose where the layout asks (a truncated file, an empty one)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from dfstudy.synth.drawing import Face, affine, camera, composite
from dfstudy.synth.layout import COLUMNS
from dfstudy.synth.methods import METHODS
from dfstudy.synth.people import make_expression, make_identity, make_video
from dfstudy.synth.seeding import rng


def _render_frames(job: dict, seed: int, w: int, h: int, n: int, fps: float) -> list[np.ndarray]:
    s = h
    video = make_video(seed, job["video"], w, h, n, fps, job.get("scene"))
    frames = []
    if job["kind"] == "faceless":
        return [np.clip(camera(video["bg"].copy(), video, t, h), 0, 255).astype(np.uint8)
                for t in range(n)]
    target = Face(make_identity(seed, job["tgt_id"]), video, s)
    expr_t = make_expression(seed, job["video"], n, fps)
    method = None
    if job.get("method_key"):
        cls = METHODS[job["method_key"]]
        method = cls(rng(seed, "method", job["relpath"]), s)
        expr_f = make_expression(seed, job["expr"], n, fps) if cls.source_expression else expr_t
        face_f = Face(make_identity(seed, job["src_id"]), video, s) if cls.swap else target
    for t in range(n):
        m = affine(video, t, s)
        real = camera(composite(video["bg"], target.layer(expr_t, t), target.alpha, m),
                      video, t, h)
        if method is None:
            out = real
        else:
            fake = camera(composite(video["bg"], face_f.layer(expr_f, t), face_f.alpha, m),
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


def render_job(args) -> dict:
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


def init_worker():
    cv2.setNumThreads(1)
