"""The corpus layout: which videos each dataset has, under which names, in which split.

The corpus's procedurally drawn talking faces are laid out FILE FOR FILE like the real releases,
so the workflow's dataset adapters read it unchanged.  Layout under ``out_dir`` (names as in the real datasets)::

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
"""

from __future__ import annotations

import copy
import logging

from dfstudy.synth.seeding import rng

log = logging.getLogger(__name__)

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
CELEB = {"celebdf_v2": ("Celeb-DF-v2", "celebdf", "celeb_v2"),
         "celebdf_v1": ("Celeb-DF", "celebdf1", "celeb_v1")}


def merge_spec(spec: dict | None) -> dict:
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


def ffpp_jobs(cfg: dict, seed: int) -> tuple[list[dict], dict]:
    counts = {k: int(cfg["pairs"].get(k, 0)) for k in ("train", "val", "test")}
    n_ids = 2 * sum(counts.values())
    ids = [f"{i:03d}" for i in rng(seed, "ffpp", "pairs").permutation(n_ids)]
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


def dfd_jobs(cfg: dict, seed: int) -> list[dict]:
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
    r = rng(seed, "dfd", "fakes")
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


def celeb_jobs(cfg: dict, seed: int, which: str) -> tuple[list[dict], list[str]]:
    root, ns, method_key = CELEB[which]
    n_id, vpi = int(cfg["identities"]), int(cfg["videos_per_identity"])
    n_test = min(int(cfg["test_identities"]), n_id)
    r = rng(seed, which, "layout")
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
