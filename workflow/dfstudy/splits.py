"""Balanced, leak-free image splits per dataset, their packed uint8 arrays, and the leakage audit.

Rules (STUDY.md "Samples"):

- A video's split comes from the dataset's official split (FF++ pairs, the Celeb-DF test list, DFD is
  all test). Videos without one (Celeb-DF outside the test list) are split into train/val by identity:
  identities are held out for validation (in a seeded order, until ``val_share`` of the real and of the
  fake videos are covered); a video goes to val when all its identities are held out, to train when none
  is, and is dropped when it mixes both. Videos whose identities also appear in a test video are dropped
  from train and val when the source is identity-disjoint: the strictest ``disjoint`` level of the
  datasets built from it (``identity`` by default). At ``video`` or ``image`` level a test video's people
  may appear in train and val, never the test video itself. Every drop is counted in the summary.
- Every part is balanced 50 % real / 50 % fake and spread over videos (round-robin in a seeded order).
- Training sets get ``train``, ``val``, ``test`` and ``finetune`` (images of its own training videos that
  are not in ``train``, plus ``finetune_per_unseen`` images from the training videos of each
  ``finetune_from`` set). Unseen sets get ``test``.
- Same-identity sets (FS-I, NT-I): fakes of the method from training pairs that do *not* feed fine-tuning;
  reals are frames of the trainset's training videos that no ``train``/``finetune`` part used (the study is
  silent on their reals; this is our reading).
- Specialised sets (CELEB-M): any video of their source not in the trainset's train/val videos; when both
  sources share an identity namespace (Celeb-DF v1 is largely contained in v2) videos are matched by name.

If a pool is too small for the configured size, the part shrinks (still balanced) and the summary says so.
The audit then checks, for every detector's training material (train, val, finetune of its trainset) and
every set it is evaluated on, that no identity / video / image (the set's ``disjoint`` level) is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PART_COLUMNS = ["image_id", "video_id", "identities", "label", "image_path"]
DEFAULT_NAMESPACES = {"faceforensics": "ffpp", "dfd": "dfd", "celebdf": "celebdf", "folder": ""}
LEVELS = ("image", "video", "identity")  # what a test set shares with no training image, weakest first


def disjoint_level(spec: dict) -> str:
    """A dataset's ``disjoint`` level: what its test images share with no training image (identity by default)."""
    return spec.get("disjoint", "identity")


class LeakageError(RuntimeError):
    """A test image shares a video or identity with a training or validation image."""


def planned_parts(datasets: dict, trainsets: list[str]) -> list[tuple[str, str]]:
    """(dataset, part) pairs that the splitting stage writes."""
    parts = []
    for name, spec in datasets.items():
        if name in trainsets:
            parts += [(name, p) for p in ("train", "val", "test", "finetune")]
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


def _rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join(keys).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _identity_sets(identities: pd.Series) -> pd.Series:
    return identities.fillna("").map(lambda s: frozenset(i for i in s.split("|") if i))


def assign_video_splits(videos: pd.DataFrame, val_share: float, seed: int,
                        disjoint: str = "identity") -> tuple[pd.Series, dict]:
    """Split per video (train/val/test, or "" for dropped), and counts of dropped videos by reason.

    ``disjoint`` is the source's level (``source_levels``): only at ``identity`` are videos of the test
    videos' people dropped from train and val.
    """
    split = videos["official_split"].fillna("").copy()
    ids = _identity_sets(videos["identities"])

    def identities_in(name):
        return set().union(*ids[split == name]) if (split == name).any() else set()

    dropped = {}
    test_ids = identities_in("test") if disjoint == "identity" else set()
    shared = (split != "test") & ids.map(lambda s: bool(s & test_ids))
    dropped["shares an identity with a test video"] = int(shared.sum())
    unassigned = (split == "") & ~shared
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


def make_splits(manifests: dict[str, pd.DataFrame], sources: dict, datasets: dict, trainsets: list[str],
                sizes: dict, seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """All parts of all datasets, and a summary (requested vs. actual sizes, dropped videos).

    ``manifests`` maps a source name to its face manifest (only ``status == "ok"`` rows are used).
    """
    videos, dropped_rows = {}, []
    levels = source_levels(datasets)
    for source, manifest in manifests.items():
        table = manifest.drop_duplicates("video_id")
        level = levels.get(source, "identity")
        if level != "identity":
            log.info("%s: train/val may share people with test videos (disjoint: %s)", source, level)
        split, dropped = assign_video_splits(table.reset_index(drop=True), sizes["val_share"], seed, level)
        videos[source] = dict(zip(table["video_id"], split))
        dropped_rows += [{"dataset": "", "part": f"{source}: {k}", "requested": 0, "actual": v}
                         for k, v in dropped.items() if v]

    def images_of(name: str) -> pd.DataFrame:
        spec = datasets[name]
        faces = manifests[spec["source"]]
        faces = faces[(faces["status"] == "ok") & ((faces["label"] == 0) | (faces["method"] == spec["method"]))]
        return faces.assign(split=faces["video_id"].map(videos[spec["source"]]))

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

    parts: dict[tuple[str, str], pd.DataFrame] = {}
    requested: dict[tuple[str, str], int] = {}

    def put(name, part, pool, n):
        parts[(name, part)] = sample_balanced(pool, n, _rng(seed, name, part))
        requested[(name, part)] = n

    for name in trainsets:
        pool = images_of(name)
        for part in ("train", "val", "test"):
            put(name, part, pool[pool["split"] == part], sizes[part])
        rest = pool[(pool["split"] == "train") & ~pool["image_id"].isin(parts[(name, "train")]["image_id"])]
        own = sample_balanced(rest, sizes["finetune_own"], _rng(seed, name, "finetune-own"))
        extra = [sample_balanced(_finetune_pool(images_of(u), finetune_videos[u]), sizes["finetune_per_unseen"],
                                 _rng(seed, name, "finetune", u)) for u in sizes["finetune_from"]]
        parts[(name, "finetune")] = pd.concat([own, *extra]).sort_values("image_id").reset_index(drop=True)
        requested[(name, "finetune")] = sizes["finetune_own"] + sizes["finetune_per_unseen"] * len(sizes["finetune_from"])

    for name, spec in datasets.items():
        if name in trainsets:
            continue
        pool = images_of(name)
        if spec["role"] == "unseen":
            put(name, "test", pool[pool["split"] == "test"], sizes["test"])
        elif spec["role"] == "specialised":
            put(name, "test", _specialised_pool(pool, name, spec, sources, datasets, parts), sizes["test"])
        elif spec["role"] == "same_identity":
            trainset = spec["trainset"]
            used = pd.concat([parts[(trainset, "train")], parts[(trainset, "finetune")]])["image_id"]
            own = images_of(trainset)
            reals = own[(own["label"] == 0) & (own["split"] == "train") & ~own["image_id"].isin(used)]
            fakes = pool[(pool["label"] == 1) & pool["video_id"].isin(_identity_pool(name, spec, datasets, identity_videos))]
            put(name, "test", pd.concat([reals, fakes]), sizes["test"])

    summary = pd.DataFrame(
        [{"dataset": d, "part": p, "requested": requested[(d, p)], "actual": len(t),
          "videos": t["video_id"].nunique(), "fake": int(t["label"].sum()),
          "disjoint": disjoint_level(datasets[d])} for (d, p), t in parts.items()]
        + dropped_rows)
    for (d, p), t in parts.items():
        if len(t) < requested[(d, p)]:
            log.warning("%s/%s: %d images requested, only %d available (balanced)", d, p, requested[(d, p)], len(t))
        parts[(d, p)] = t[PART_COLUMNS]
    return parts, summary


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


def _specialised_pool(pool, name, spec, sources, datasets, parts) -> pd.DataFrame:
    trainset = spec["trainset"]
    seen = pd.concat([parts[(trainset, "train")], parts[(trainset, "val")], parts[(trainset, "finetune")]])

    def namespace(src):
        return sources[src].get("identity_namespace") or DEFAULT_NAMESPACES[sources[src]["adapter"]]

    if namespace(spec["source"]) == namespace(datasets[trainset]["source"]):
        seen_names = set(seen["video_id"].str.split(":", n=1).str[1])
        return pool[~pool["video_id"].str.split(":", n=1).str[1].isin(seen_names)]
    return pool


def audit(parts: dict[tuple[str, str], pd.DataFrame], datasets: dict, trainsets: list[str]) -> pd.DataFrame:
    """Overlap counts between every detector's training material and every set it is tested on.

    Raises LeakageError naming the offending sets when any required-disjoint overlap is non-zero.
    """
    rows = []
    for trainset in trainsets:
        seen = pd.concat([parts[(trainset, p)] for p in ("train", "val", "finetune")])
        seen_ids = set().union(*_identity_sets(seen["identities"]))
        for name in evaluation_sets(datasets, trainset):
            test = parts[(name, "test")]
            level = disjoint_level(datasets[name])
            overlap = {
                "images": len(set(test["image_id"]) & set(seen["image_id"])),
                "videos": len(set(test["video_id"]) & set(seen["video_id"])),
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

    images = [cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in part["image_path"]]
    return {
        "images": np.stack(images) if images else np.zeros((0, 0, 0, 3), np.uint8),
        "labels": part["label"].to_numpy(np.uint8),
        "image_ids": part["image_id"].to_numpy(str),
        "video_ids": part["video_id"].to_numpy(str),
    }


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
        parts, summary = make_splits(manifests, cfg["sources"], cfg["datasets"], cfg["trainsets"],
                                     cfg["splits"], cfg["seed"])
        out = Path(args.out_dir)
        for (dataset, part), table in parts.items():
            (out / dataset).mkdir(parents=True, exist_ok=True)
            table.to_csv(out / dataset / f"{part}.csv", index=False)
        summary.to_csv(out / "summary.csv", index=False)
        print(summary.to_string(index=False))
    elif args.command == "pack":
        arrays = pack(pd.read_csv(args.part, keep_default_na=False))
        np.savez(args.out, **arrays)
        print(f"{args.out}: {arrays['images'].shape}")
    else:
        cfg = json.loads(args.config_json)
        parts = {(d, p): pd.read_csv(Path(args.splits_dir) / d / f"{p}.csv", keep_default_na=False)
                 for d, p in planned_parts(cfg["datasets"], cfg["trainsets"])}
        report = audit(parts, cfg["datasets"], cfg["trainsets"])
        report.to_csv(args.out, index=False)
        print(report.to_string(index=False))


if __name__ == "__main__":
    main()
