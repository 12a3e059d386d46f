"""Render the whole corpus: lay it out, write the split and test lists, render every video
(in worker processes when asked; the bytes do not depend on their number)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import sys
from pathlib import Path

import pandas as pd

from dfstudy.synth.layout import (CELEB, COLUMNS, DATASET_DIRS, FFPP_ROOT, MARKER, celeb_jobs,
                                  dfd_jobs, ffpp_jobs, merge_spec)
from dfstudy.synth.video import init_worker, render_job

log = logging.getLogger(__name__)


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

    spec = merge_spec(spec)
    out = Path(out_dir)
    w, h = (int(v) for v in spec["frame_size"])
    n, fps = int(spec["frames_per_video"]), float(spec["fps"])
    _prepare_out(out, spec, seed)

    jobs = []
    if spec.get("ffpp"):
        fj, splits = ffpp_jobs(spec["ffpp"], seed)
        jobs += fj
        sdir = out / FFPP_ROOT / "splits"
        sdir.mkdir(parents=True, exist_ok=True)
        for name, plist in splits.items():
            (sdir / f"{name}.json").write_text(json.dumps(plist) + "\n")
    if spec.get("dfd"):
        jobs += dfd_jobs(spec["dfd"], seed)
    for which in ("celebdf_v2", "celebdf_v1"):
        if spec.get(which):
            cj, test_list = celeb_jobs(spec[which], seed, which)
            jobs += cj
            (out / CELEB[which][0]).mkdir(parents=True, exist_ok=True)
            (out / CELEB[which][0] / "List_of_testing_videos.txt").write_text(
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
        with ctx.Pool(threads, initializer=init_worker) as pool:
            for row in pool.imap_unordered(render_job, tasks, chunksize=2):
                rows.append(row)
                bar.update()
    else:
        for task in tasks:
            rows.append(render_job(task))
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("relpath", ignore_index=True)
