"""Balanced, leak-free image splits per dataset, their packed uint8 arrays, and the leakage audit.

Rules (STUDY.md "Samples"):

- A video's split comes from the dataset's official split (FF++ pairs, the Celeb-DF test list, DFD is
  all test). Videos without one (Celeb-DF outside the test list) are split into train/val at the
  source's level (``source_levels``: the strictest ``disjoint`` of the datasets built from it):
  at ``identity`` level identities are held out for validation (in a seeded order, until ``val_share``
  of the real and of the fake videos are covered), a video goes to val when all its identities are held
  out, to train when none is, and is dropped when it mixes both; videos whose people also appear in a
  test video are dropped too. At ``video`` or ``image`` level ``val_share`` of each class's videos go to
  val (seeded) and nothing is dropped: a test video's people may appear in train and val, never the
  test video itself. Every drop is counted in the summary with its reason.
- Every part is balanced 50 % real / 50 % fake and spread over videos (round-robin in a seeded order).
- Training sets get ``train``, ``val``, ``test``, ``finetune`` (images of its own training videos that
  are not in ``train``, plus ``finetune_per_unseen`` images from the training videos of each
  ``finetune_from`` set) and ``finetune_val`` (its ``val`` plus ``finetune_val_per_unseen`` images from
  the validation videos of each ``finetune_from`` set: the study's code picks the fine-tuned detectors'
  best epoch on both). Unseen sets get ``test``.
- Same-identity sets (FS-I, NT-I): fakes of the method from training pairs that do *not* feed fine-tuning;
  reals are frames of the trainset's training videos that no ``train``/``finetune`` part used (the study is
  silent on their reals; this is our reading).
- Specialised sets (CELEB-M): any video of their source that the trainset never trains or validates on.
  When both sources share an identity namespace (Celeb-DF v1 re-uses v2's videos) a video is the same
  video in both (``video_key``); enough of the shared videos to fill the set are reserved for it (seeded)
  before the trainset's parts are drawn, so neither runs dry.

A part smaller than configured is an error (``ShortSplitError``) that names the dataset, the part, the
sizes, the pool that ran dry and the config keys that fix it, unless ``splits.allow_short`` is set; an
empty part is an error either way. The audit then checks, for every detector's training material (train,
val, finetune, finetune_val of its trainset) and every set it is evaluated on, that no identity / video /
image (the set's ``disjoint`` level) is shared, comparing videos by ``video_key`` across sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# dataset: the set an image was drawn for (a trainset's finetune part mixes its own and FS/NT images)
PART_COLUMNS = ["image_id", "video_id", "identities", "label", "image_path", "dataset"]
DEFAULT_NAMESPACES = {"faceforensics": "ffpp", "dfd": "dfd", "celebdf": "celebdf", "folder": ""}
LEVELS = ("image", "video", "identity")  # what a test set shares with no training image, weakest first
TRAINSET_PARTS = ("train", "val", "test", "finetune", "finetune_val")
SEEN_PARTS = ("train", "val", "finetune", "finetune_val")  # what a detector learns from or is selected on
# The key that sets how many faces a short part's pool holds: test-side videos give frames_per_video faces,
# training-side videos (train, val, fine-tuning, FS-I / NT-I reals) frames_per_training_video.
TEST_SUPPLY_KEY = "preprocess.frames_per_video"
TRAINING_SUPPLY_KEY = "preprocess.frames_per_training_video"


def disjoint_level(spec: dict) -> str:
    """A dataset's ``disjoint`` level: what its test images share with no training image (identity by default)."""
    return spec.get("disjoint", "identity")


class LeakageError(RuntimeError):
    """A test image shares a video or identity with a training or validation image."""


class ShortSplitError(RuntimeError):
    """A part holds fewer images than configured (or none); raised before any training."""


def planned_parts(datasets: dict, trainsets: list[str]) -> list[tuple[str, str]]:
    """(dataset, part) pairs that the splitting stage writes."""
    parts = []
    for name, spec in datasets.items():
        if name in trainsets:
            parts += [(name, p) for p in TRAINSET_PARTS]
        elif spec["role"] in ("unseen", "specialised", "same_identity"):
            parts.append((name, "test"))
    return parts


def evaluation_sets(datasets: dict, trainset: str) -> list[str]:
    """Datasets the detectors of ``trainset`` are tested on: its own, the unseen ones, its RQ2 sets."""
    own = [trainset]
    unseen = [n for n, s in datasets.items() if s["role"] == "unseen"]
    paired = [n for n, s in datasets.items() if s["role"] in ("specialised", "same_identity") and s.get("trainset") == trainset]
    return own + unseen + paired


def source_levels(datasets: dict) -> dict[str, str]:
    """Per source, the strictest ``disjoint`` level of its datasets: how far its train/val videos keep from
    its test videos (one split per source serves all of them)."""
    levels: dict[str, str] = {}
    for spec in datasets.values():
        level, source = disjoint_level(spec), spec["source"]
        levels[source] = max(levels.get(source, level), level, key=LEVELS.index)
    return levels


def training_sources(datasets: dict, trainsets: list[str], finetune_from: list[str]) -> set[str]:
    """Sources whose non-test videos feed training, validation or fine-tuning (and so give more faces)."""
    return {datasets[n]["source"] for n in [*trainsets, *finetune_from] if n in datasets}


def namespace(sources: dict, source: str) -> str:
    """The namespace of a source's identities and videos (its own name where the adapter has none)."""
    spec = sources[source]
    return spec.get("identity_namespace") or DEFAULT_NAMESPACES[spec["adapter"]] or source


def video_key(video_ids: pd.Series, sources: dict) -> pd.Series:
    """Videos as ``namespace:name``: the same video under two sources that share a namespace (Celeb-DF v1
    inside v2) gets one key, while video ids (``source:name``) differ."""
    split = video_ids.str.split(":", n=1)
    names = {s: namespace(sources, s) for s in split.str[0].unique()}
    return split.str[0].map(names) + ":" + split.str[1]


def _rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join(keys).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _identity_sets(identities: pd.Series) -> pd.Series:
    return identities.fillna("").map(lambda s: frozenset(i for i in s.split("|") if i))


def assign_video_splits(videos: pd.DataFrame, val_share: float, seed: int,
                        disjoint: str = "identity") -> tuple[pd.Series, dict]:
    """Split per video (train/val/test, or "" for dropped), and counts of dropped videos by reason.

    ``disjoint`` is the source's level (``source_levels``): at ``identity`` videos are held out for
    validation by identity and videos of the test videos' people are dropped; at ``video`` or ``image``
    level each class's videos are held out one by one and no video is dropped.
    """
    split = videos["official_split"].fillna("").copy()
    unassigned = split == ""
    if disjoint != "identity":
        rng = _rng(seed, "val-videos", str(videos["source"].iloc[0]))
        for label in (0, 1):
            rows = np.flatnonzero((unassigned & (videos["label"] == label)).to_numpy())
            held = rng.permutation(rows)[: int(round(val_share * len(rows)))]
            split.iloc[rows] = "train"
            split.iloc[held] = "val"
        return split, {}

    ids = _identity_sets(videos["identities"])

    def identities_in(name):
        return set().union(*ids[split == name]) if (split == name).any() else set()

    dropped = {}
    test_ids = identities_in("test")
    shared = (split != "test") & ids.map(lambda s: bool(s & test_ids))
    dropped["shares an identity with a test video"] = int(shared.sum())
    unassigned &= ~shared
    split[shared] = "dropped"
    if unassigned.any():
        rng = _rng(seed, "val-identities", str(videos["source"].iloc[0]))
        held = _held_out_identities(ids[unassigned], videos["label"][unassigned], val_share, rng)
        coin = pd.Series(rng.random(len(videos)) < val_share, index=videos.index)
        anonymous = unassigned & (ids.map(len) == 0)
        split[unassigned & ids.map(lambda s: bool(s) and s <= held)] = "val"
        split[unassigned & ids.map(lambda s: bool(s) and not (s & held))] = "train"
        split[anonymous] = np.where(coin[anonymous], "val", "train")
        mixed = unassigned & (split == "")
        dropped["mixes train and val identities"] = int(mixed.sum())
        split[mixed] = "dropped"
    train_ids = identities_in("train")
    shared = (split == "val") & ids.map(lambda s: bool(s & train_ids))
    dropped["val video shares an identity with a train video"] = int(shared.sum())
    split[shared] = "dropped"
    return split.replace("dropped", ""), dropped


def _held_out_identities(ids: pd.Series, labels: pd.Series, share: float, rng) -> set:
    """Identities held out for validation: grown in a seeded order until ``share`` of the real and of the
    fake videos lie entirely inside them (a fake names two people, so one identity is rarely enough)."""
    pool = sorted(set().union(*ids)) if len(ids) else []
    named = ids.map(len) > 0
    need = {label: share * ((labels == label) & named).sum() for label in (0, 1)}
    held: set = set()
    for identity in rng.permutation(pool)[: len(pool) // 2]:
        held.add(identity)
        inside = named & ids.map(lambda s: s <= held)
        if all((inside & (labels == label)).sum() >= n for label, n in need.items()):
            break
    return held


def _spread(images: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Up to n images, spread evenly over videos (round-robin over videos in a seeded order)."""
    if len(images) <= n:
        return images
    shuffled = images.iloc[rng.permutation(len(images))]
    turn = shuffled.groupby("video_id", sort=False).cumcount()
    return shuffled.iloc[np.argsort(turn.to_numpy(), kind="stable")[:n]]


def sample_balanced(pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n images, half real and half fake (fewer, still balanced, when the pool is short)."""
    real, fake = pool[pool["label"] == 0], pool[pool["label"] == 1]
    per_class = min(n // 2, len(real), len(fake))
    chosen = pd.concat([_spread(real, per_class, rng), _spread(fake, per_class, rng)])
    return chosen.sort_values("image_id").reset_index(drop=True)


class _Draws:
    """Every sample drawn for a part, with its pool, so that a short part can say which pool ran dry."""

    def __init__(self, seed: int):
        self.seed, self.rows = seed, []

    def draw(self, dataset, part, pool, n, size_key, supply_key, of=None, exclude=()):
        """``n`` balanced images of ``pool`` (minus image ids in ``exclude``) for ``dataset/part``;
        ``of`` names the dataset the images come from when it is not ``dataset`` (fine-tuning)."""
        pool = pool[~pool["image_id"].isin(exclude)] if len(exclude) else pool
        of = of or dataset
        key = (dataset, part) if of == dataset else (dataset, part, of)
        chosen = sample_balanced(pool, n, _rng(self.seed, *key)).assign(dataset=of)
        self.rows.append({"dataset": dataset, "part": part, "from": of, "requested": n, "actual": len(chosen),
                          "real_pool": int((pool["label"] == 0).sum()), "fake_pool": int((pool["label"] == 1).sum()),
                          "size_key": size_key, "supply_key": supply_key})
        return chosen

    def draw_each(self, dataset, part, taken, pools, n, size_key, supply_key):
        """``n`` images from each of ``pools`` ({dataset it comes from: pool}); every draw leaves out the
        images of ``taken`` and of the draws before it (FF++-based sets share their reals)."""
        chosen = list(taken)
        for of, pool in pools.items():
            chosen.append(self.draw(dataset, part, pool, n, size_key, supply_key, of=of,
                                    exclude=pd.concat(chosen)["image_id"]))
        return chosen[len(taken):]

    def shortfalls(self) -> list[dict]:
        return [r for r in self.rows if r["actual"] < r["requested"]]


def _shortfall_text(row: dict) -> str:
    dry = [f"{name} images ({row[f'{name}_pool']:,} in the pool)" for name in ("real", "fake")
           if row[f"{name}_pool"] < row["requested"] // 2]
    source = "" if row["from"] == row["dataset"] else f" (its {row['from']} images)"
    return (f"{row['dataset']}/{row['part']}{source}: {row['requested']:,} images requested, {row['actual']:,} achieved; "
            f"ran dry: {' and '.join(dry) or 'balance'}; fix: raise {row['supply_key']} or lower {row['size_key']}")


def make_splits(manifests: dict[str, pd.DataFrame], sources: dict, datasets: dict, trainsets: list[str],
                sizes: dict, seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """All parts of all datasets, and a summary (requested vs. achieved sizes, dropped videos).

    ``manifests`` maps a source name to its face manifest (only ``status == "ok"`` rows are used).
    ``sizes`` is the ``splits`` config. Raises ShortSplitError when a part falls short of its size
    (unless ``sizes["allow_short"]``) or is empty.
    """
    videos, dropped_rows = {}, []
    levels = source_levels(datasets)
    for source, manifest in manifests.items():
        table = manifest.drop_duplicates("video_id")
        level = levels.get(source, "identity")
        split, dropped = assign_video_splits(table.reset_index(drop=True), sizes["val_share"], seed, level)
        videos[source] = dict(zip(table["video_id"], split))
        dropped_rows += [{"dataset": "", "part": f"{source}: {k}", "requested": 0, "actual": v}
                         for k, v in dropped.items() if v]

    faces = {s: m[m["status"] == "ok"].assign(key=lambda m: video_key(m["video_id"], sources))
             for s, m in manifests.items()}
    reserved = _reserve_for_specialised(faces, videos, sources, datasets, sizes, seed)

    def images_of(name: str) -> pd.DataFrame:
        spec = datasets[name]
        pool = faces[spec["source"]]
        pool = pool[(pool["label"] == 0) | (pool["method"] == spec["method"])]
        if name in trainsets:  # shared videos kept for a specialised set never enter the trainset's parts
            pool = pool[~pool["key"].isin(reserved)]
        return pool.assign(split=pool["video_id"].map(videos[spec["source"]]))

    def pairs(table: pd.DataFrame) -> pd.Series:  # FF++ fakes a_b and b_a share one official pair
        return table["identities"].map(lambda s: "|".join(sorted(s.split("|"))))

    # Training videos of each fine-tuning set: half of the pairs feed fine-tuning, half the same-identity sets.
    finetune_videos, identity_videos = {}, {}
    for name in sizes["finetune_from"]:
        fakes = images_of(name)
        fakes = fakes[(fakes["label"] == 1) & (fakes["split"] == "train")].drop_duplicates("video_id")
        groups = sorted(set(pairs(fakes)))
        ft_groups = set(_rng(seed, "finetune-pairs", name).permutation(groups)[: (len(groups) + 1) // 2])
        in_ft = pairs(fakes).isin(ft_groups)
        finetune_videos[name] = set(fakes.loc[in_ft, "video_id"])
        identity_videos[name] = set(fakes.loc[~in_ft, "video_id"])

    draws = _Draws(seed)
    parts: dict[tuple[str, str], pd.DataFrame] = {}
    for name in trainsets:
        pool = images_of(name)
        for part in ("train", "val", "test"):
            supply = TEST_SUPPLY_KEY if part == "test" else TRAINING_SUPPLY_KEY
            parts[(name, part)] = draws.draw(name, part, pool[pool["split"] == part], sizes[part],
                                             f"splits.{part}", supply)
        own = draws.draw(name, "finetune", pool[pool["split"] == "train"], sizes["finetune_own"],
                         "splits.finetune_own", TRAINING_SUPPLY_KEY, exclude=parts[(name, "train")]["image_id"])
        extra = draws.draw_each(name, "finetune", [parts[(name, "train")], own],
                                {u: _finetune_pool(images_of(u), finetune_videos[u]) for u in sizes["finetune_from"]},
                                sizes["finetune_per_unseen"], "splits.finetune_per_unseen", TRAINING_SUPPLY_KEY)
        parts[(name, "finetune")] = pd.concat([own, *extra]).sort_values("image_id").reset_index(drop=True)
        extra = draws.draw_each(name, "finetune_val", [parts[(name, "val")]],
                                {u: images_of(u)[lambda t: t["split"] == "val"] for u in sizes["finetune_from"]},
                                sizes["finetune_val_per_unseen"], "splits.finetune_val_per_unseen", TRAINING_SUPPLY_KEY)
        parts[(name, "finetune_val")] = (pd.concat([parts[(name, "val")], *extra])
                                         .sort_values("image_id").reset_index(drop=True))

    # an unseen set of a source no detector learns from (e.g. a folder of one's own videos, which has no
    # official split) draws its test images from all of its videos
    learnt_from = training_sources(datasets, trainsets, sizes["finetune_from"])
    for name, spec in datasets.items():
        if name in trainsets:
            continue
        pool = images_of(name)
        if spec["role"] == "unseen":
            if spec["source"] in learnt_from:
                pool = pool[pool["split"] == "test"]  # the official test videos: the others are trained on
        elif spec["role"] == "specialised":
            pool = _specialised_pool(pool, spec["trainset"], parts, sources)
        elif spec["role"] == "same_identity":
            trainset = spec["trainset"]
            used = pd.concat([parts[(trainset, "train")], parts[(trainset, "finetune")]])["image_id"]
            own = images_of(trainset)
            reals = own[(own["label"] == 0) & (own["split"] == "train") & ~own["image_id"].isin(used)]
            fakes = pool[(pool["label"] == 1) & pool["video_id"].isin(_identity_pool(name, spec, datasets, identity_videos))]
            pool = pd.concat([reals, fakes])
        else:
            continue
        supply = TRAINING_SUPPLY_KEY if spec["role"] == "same_identity" else TEST_SUPPLY_KEY
        parts[(name, "test")] = draws.draw(name, "test", pool, sizes["test"], "splits.test", supply)

    requested, short = {}, {}
    for row in draws.rows:
        key = (row["dataset"], row["part"])
        requested[key] = requested.get(key, 0) + row["requested"]
        if row["actual"] < row["requested"]:
            short.setdefault(key, []).append(_shortfall_text(row))
    for name in trainsets:  # finetune_val holds the val part, and its shortfall
        requested[(name, "finetune_val")] = requested.get((name, "finetune_val"), 0) + requested[(name, "val")]
        short[(name, "finetune_val")] = short.get((name, "val"), []) + short.get((name, "finetune_val"), [])
    summary = pd.DataFrame(
        [{"dataset": d, "part": p, "requested": requested[(d, p)], "actual": len(t),
          "videos": t["video_id"].nunique(), "fake": int(t["label"].sum()),
          "disjoint": disjoint_level(datasets[d]), "shortfall": "; ".join(short.get((d, p), []))}
         for (d, p), t in parts.items()]
        + dropped_rows)
    empty = [f"{d}/{p}" for (d, p), t in parts.items() if len(t) == 0 and requested[(d, p)] > 0]
    if draws.shortfalls() and (empty or not sizes.get("allow_short", False)):
        lines = [_shortfall_text(r) for r in draws.shortfalls()]
        raise ShortSplitError(
            "splits fall short of their configured sizes" + (f" (empty: {', '.join(empty)})" if empty else "")
            + ":\n  " + "\n  ".join(lines)
            + ("" if empty else "\nset splits.allow_short: true to run with the achieved sizes (reported as deviations)"))
    for row in draws.shortfalls():
        log.warning("%s", _shortfall_text(row))
    parts = {k: t[PART_COLUMNS] for k, t in parts.items()}
    return parts, summary


def _reserve_for_specialised(faces, videos, sources, datasets, sizes, seed) -> set:
    """Keys of videos that a specialised set shares with its trainset's source and keeps for itself.

    Only where both sources share a namespace: for each class, the specialised set's videos that the
    trainset can never use (its test videos, videos it dropped, videos it does not have) count first;
    then shared training-side videos are reserved in a seeded order until the class can fill half of
    ``splits.test``.
    """
    reserved: set = set()
    for name, spec in datasets.items():
        if spec["role"] != "specialised":
            continue
        train_source = datasets[spec["trainset"]]["source"]
        if namespace(sources, spec["source"]) != namespace(sources, train_source):
            continue
        mine = faces[spec["source"]]
        mine = mine[(mine["label"] == 0) | (mine["method"] == spec["method"])]
        split_of = {k: videos[train_source][v] for k, v in
                    zip(faces[train_source]["key"], faces[train_source]["video_id"])}
        usable = mine["key"].map(lambda k: split_of.get(k, "") in ("train", "val"))
        rng = _rng(seed, "reserve", name)
        for label in (0, 1):
            have = int(((mine["label"] == label) & ~usable).sum())
            counts = mine[(mine["label"] == label) & usable].groupby("key").size()
            for key in rng.permutation(counts.index.to_numpy()):
                if have >= sizes["test"] // 2:
                    break
                reserved.add(key)
                have += int(counts[key])
    return reserved


def _finetune_pool(images: pd.DataFrame, videos: set) -> pd.DataFrame:
    """Fine-tuning images of an unseen set: its fakes from the fine-tuning pairs and the pairs' originals."""
    fakes = images[(images["label"] == 1) & images["video_id"].isin(videos)]
    pair_ids = set().union(*_identity_sets(fakes["identities"])) if len(fakes) else set()
    reals = images[(images["label"] == 0) & (images["split"] == "train")
                   & _identity_sets(images["identities"]).map(lambda s: bool(s & pair_ids))]
    return pd.concat([reals, fakes])


def _identity_pool(name, spec, datasets, identity_videos) -> set:
    """Same-identity set: fake videos of its method that were kept out of fine-tuning."""
    for source_set, vids in identity_videos.items():
        if datasets[source_set]["method"] == spec["method"] and datasets[source_set]["source"] == spec["source"]:
            return vids
    raise ValueError(f"datasets.{name}: its method {spec['method']} must also be a fine-tuning set "
                     f"(splits.finetune_from) so that its training pairs are split between fine-tuning and {name}")


def _specialised_pool(pool, trainset, parts, sources) -> pd.DataFrame:
    """A specialised set's images: every video of its source that its trainset never learns from or is
    selected on, the same video under another source included (``video_key``)."""
    seen = pd.concat([parts[(trainset, p)] for p in SEEN_PARTS])
    return pool[~pool["key"].isin(set(video_key(seen["video_id"], sources)))]


def audit(parts: dict[tuple[str, str], pd.DataFrame], datasets: dict, trainsets: list[str],
          sources: dict) -> pd.DataFrame:
    """Overlap counts between every detector's training material and every set it is tested on.

    Videos are compared by ``video_key``, so a video that two sources share (Celeb-DF v1 and v2) counts
    as one. Raises LeakageError naming the offending sets when any required-disjoint overlap is non-zero.
    """
    rows = []
    for trainset in trainsets:
        seen = pd.concat([parts[(trainset, p)] for p in SEEN_PARTS])
        seen_ids = set().union(*_identity_sets(seen["identities"]))
        seen_videos = set(video_key(seen["video_id"], sources))
        for name in evaluation_sets(datasets, trainset):
            test = parts[(name, "test")]
            level = disjoint_level(datasets[name])
            overlap = {
                "images": len(set(test["image_id"]) & set(seen["image_id"])),
                "videos": len(set(video_key(test["video_id"], sources)) & seen_videos),
                "identities": len(set().union(*_identity_sets(test["identities"])) & seen_ids),
            }
            required = {"image": ["images"], "video": ["images", "videos"],
                        "identity": ["images", "videos", "identities"]}[level]
            rows.append({"trainset": trainset, "test_set": name, "disjoint": level, **overlap,
                         "ok": all(overlap[k] == 0 for k in required)})
        train, val = parts[(trainset, "train")], parts[(trainset, "val")]
        shared = len(set(train["video_id"]) & set(val["video_id"]))
        rows.append({"trainset": trainset, "test_set": f"{trainset} (val vs train)", "disjoint": "video",
                     "images": 0, "videos": shared, "identities": 0, "ok": shared == 0})
    report = pd.DataFrame(rows)
    bad = report[~report["ok"]]
    if len(bad):
        raise LeakageError("leakage between training/validation and test images:\n" + bad.to_string(index=False))
    return report


def pack(part: pd.DataFrame) -> dict[str, np.ndarray]:
    """Decode a part's PNG crops once into the uint8 arrays training reads every epoch."""
    import cv2

    if part.empty:  # make_splits never writes one; a hand-edited CSV must not reach training
        raise ShortSplitError("an empty part cannot be packed: rerun make_splits")
    images = [cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in part["image_path"]]
    return {
        "images": np.stack(images),
        "labels": part["label"].to_numpy(np.uint8),
        "image_ids": part["image_id"].to_numpy(str),
        "video_ids": part["video_id"].to_numpy(str),
        # which set each image was drawn for (adversarial fine-tuning's domains); absent in older part CSVs
        **({"datasets": part["dataset"].to_numpy(str)} if "dataset" in part else {}),
    }


def write_parts(parts: dict[tuple[str, str], pd.DataFrame], summary: pd.DataFrame, out_dir) -> None:
    """``out_dir/<set>/<part>.csv`` for every drawn part and ``out_dir/summary.csv`` (printed too)."""
    out = Path(out_dir)
    for (name, part), table in parts.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        table.to_csv(out / name / f"{part}.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.to_string(index=False))


def main(argv=None):
    parser = argparse.ArgumentParser(description="make splits, pack them, or audit them for leakage")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="sample every dataset's parts from the face manifests")
    make.add_argument("--manifests", nargs="+", required=True, help="SOURCE=manifest.parquet")
    make.add_argument("--config-json", required=True, help="{sources, datasets, trainsets, splits, seed}")
    make.add_argument("--out-dir", required=True)
    packer = sub.add_parser("pack", help="decode one part's crops into an .npz of uint8 arrays")
    packer.add_argument("--part", required=True, help="part CSV")
    packer.add_argument("--out", required=True)
    check = sub.add_parser("audit", help="fail if any test image leaks into training or validation")
    check.add_argument("--splits-dir", required=True)
    check.add_argument("--config-json", required=True)
    check.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.command == "make":
        cfg = json.loads(args.config_json)
        manifests = {k: pd.read_parquet(v) for k, v in (m.split("=", 1) for m in args.manifests)}
        try:
            parts, summary = make_splits(manifests, cfg["sources"], cfg["datasets"], cfg["trainsets"],
                                         cfg["splits"], cfg["seed"])
        except ShortSplitError as err:
            sys.exit(f"ShortSplitError: {err}")
        write_parts(parts, summary, args.out_dir)
    elif args.command == "pack":
        arrays = pack(pd.read_csv(args.part, keep_default_na=False))
        np.savez(args.out, **arrays)
        print(f"{args.out}: {arrays['images'].shape}")
    else:
        cfg = json.loads(args.config_json)
        parts = {(d, p): pd.read_csv(Path(args.splits_dir) / d / f"{p}.csv", keep_default_na=False)
                 for d, p in planned_parts(cfg["datasets"], cfg["trainsets"])}
        report = audit(parts, cfg["datasets"], cfg["trainsets"], cfg["sources"])
        report.to_csv(args.out, index=False)
        print(report.to_string(index=False))


if __name__ == "__main__":
    main()
