"""Deviations from the study's protocol, as data: the study's numbers (:data:`PAPER_SCALE`), what we decided
where it is silent (:data:`DECISIONS`), and :func:`deviations`, which evaluates both on a resolved config and
the sizes the splits achieved.

Each :data:`PAPER_SCALE` row is a rule evaluated on the resolved config, so a paper-scale run lists none of
the scale deviations and a demo run lists the demo's actual sizes. The study's training sets, architectures
and strategies are :data:`dfstudy.study.PAPER`'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dfstudy.study import PAPER

__all__ = ["PAPER_SCALE", "DECISIONS", "STUDY_PART_SIZES", "achieved_deviations", "deviations", "show", "count_word"]

# The study's numbers (shared/STUDY.md, "Samples", "The 30 detectors", "Analyses"), each with the config
# key that sets it here and, where the effective value is not the key's alone, how to compute it (the
# analyses cannot use more images than a test split holds). A run deviates where the value differs;
# tests check that config/paper.yaml (merged over config.yaml) reproduces every one of them.
PAPER_SCALE = (
    ("preprocess.frames_per_video", 10, "frames per video"),
    ("preprocess.face_size", 256, "face crop and detector input size (px)"),
    ("splits.train", 16000, "training images per original detector"),
    ("splits.finetune_own", 2000, "fine-tuning images from the detector's training set"),
    ("splits.finetune_per_unseen", 1000, "fine-tuning images from each of FS and NT"),
    ("splits.finetune_from", ["FS", "NT"], "unseen sets that feed fine-tuning"),
    ("splits.finetune_val_per_unseen", 1000, "validation images from each of FS and NT added for fine-tuning "
     "(not stated in the study; its code validated fine-tuning on both)"),
    ("splits.val", 2000, "validation images (not stated in the study; our paper-scale choice)"),
    ("splits.test", 2000, "test images per dataset"),
    ("detectors.architectures", list(PAPER.architectures), "architectures"),
    ("detectors.trainsets", list(PAPER.trainsets), "training sets"),
    ("detectors.strategies", list(PAPER.strategies), "training strategies"),
    ("detectors.epochs.original", 100, "epochs, original detectors"),
    ("detectors.epochs.finetune", 50, "epochs, transfer and merge fine-tuning"),
    ("detectors.epochs_per_architecture", None, "epochs set per architecture (the study: the same for all)"),
    ("detectors.learning_rate", {"MesoNet": 0.001, "MesoInception": 0.001, "ShallowNet": 0.00005,
                                 "XceptionNet": 0.00005, "EfficientNet": 0.00005}, "Adam learning rates",
     # of the architectures trained: the configs also give rates of architectures they do not train
     lambda c: {a: r for a, r in c["detectors"]["learning_rate"].items() if a in c["detectors"]["architectures"]}),
    ("detectors.batch_size", {"original": 32, "finetune": 64},
     "batch size (not stated in the study; its code: Keras' default 32 from scratch, 64 fine-tuning)"),
    ("detectors.loss", {"MesoNet": "mean_squared_error", "MesoInception": "mean_squared_error"},
     "training loss (not stated in the study; its code: mean squared error for the Meso networks, "
     "binary cross-entropy for the rest)"),
    ("detectors.bn_momentum", None, "BatchNormalization momentum (null: Keras' 0.99, as the study's code)"),
    ("detectors.patience", None, "early stopping: epochs without a better validation accuracy before a "
     "training stops (the study: none, every epoch runs)"),
    ("detectors.recalibrate_bn", False, "BatchNormalization statistics re-estimated with dropout off after "
     "every epoch (the study: no)"),
    ("evaluation.degradation_threshold", 30, "RQ2 degradation threshold (points)"),
    ("gradcam.images", 1000, "RQ3: fake images per test set for the heatmap SSIM (at most the test "
     "set's fakes)", lambda c: min(c["gradcam"]["images"], c["splits"]["test"] // 2)),
    ("causal.architectures", list(PAPER.causal_architectures), "RQ4: architectures analysed"),
    ("causal.samples", 1920, "RQ4: images per dataset for the causal effects (at most the test set)",
     lambda c: min(c["causal"]["samples"], c["splits"]["test"])),
    ("causal.grid", 4, "RQ4: intervention values per neuron"),
)

# Where the study is silent or ambiguous, what we decided (shared/STUDY.md). Each entry: aspect, what the
# study says, a function of the config giving what this run does (None: the decision does not apply).
DECISIONS = (
    ("data", "real face videos: FaceForensics++ c23, DeepFakeDetection, Celeb-DF v1/v2",
     lambda c: ("embedded synthetic face-video corpus rendered by the workflow (each study dataset gets "
                "its own synthesis artifact), laid out like the real datasets; numbers are not comparable "
                "with the published ones") if c["corpus"]["synthesize"] else None),
    ("compression", "FaceForensics++ / DFD at c23",
     lambda c: ", ".join(f"{s}: {v.get('compression', 'c23')}" for s, v in c["sources"].items()
                         if v["adapter"] in ("faceforensics", "dfd") and v.get("compression", "c23") != "c23")
     or None),
    ("validation set", "not stated",
     lambda c: f"{c['splits']['val']} images from the training set's validation videos (FF++ official "
               f"val pairs; Celeb-DF: {100 * c['splits'].get('val_share', 0.1):g} % of its videos, or of its "
               "people where it is identity-disjoint, held out)"),
    ("faces per training-side video", "10 frames per video",
     lambda c: (f"{c['preprocess']['frames_per_training_video']} evenly spaced frames from each video outside "
                f"the official test split of a source that feeds training, {c['preprocess']['frames_per_video']} "
                "elsewhere: at the real datasets' counts 10 faces per video cannot fill the study's sizes "
                "(FF++ has 720 training originals for 12,000 real training-side images)")
     if c["preprocess"].get("frames_per_training_video") else None),
    ("frames without a face", "replaced by the next frame with a face (the paper does not say how far)",
     lambda c: "the search carries on past the next target frame, so a video yields its full count whenever "
               "enough of its frames hold a face; replacements then sit next to each other"),
    ("which face", "not stated",
     lambda c: "fakes: the face inside the manipulation mask where the dataset ships masks (FF++, DFD); "
               "otherwise, and for reals, the largest face"),
    ("face detection", "face_recognition (dlib HOG + 68 landmarks); sizes not stated",
     lambda c: (f"on a copy downscaled to {c['preprocess'].get('detect_width', 480)} px wide (speed), box "
                f"enlarged {1 + c['preprocess'].get('margin', 0.3):g}x, faces under "
                f"{c['preprocess'].get('min_face', 40)} px skipped")),
    ("BatchNormalization in transfer", "not stated",
     lambda c: "frozen with the other frozen layers (inference mode), as the study's code freezes it"),
    ("Celeb-DF v1 (CELEB-M)", "other videos than CELEB's",
     lambda c: "Celeb-DF v1 re-uses Celeb-DF v2 videos: with a shared identity namespace, a v1 video counts "
               "as the v2 video of the same name; enough shared videos for CELEB-M are reserved (seeded) before "
               "CELEB's parts are drawn, and the audit compares videos across the two sources"
     if any(s.get("role") == "specialised" for s in c["datasets"].values()) else None),
    ("short splits", "every part at its size",
     lambda c: "splits.allow_short is set: parts smaller than configured are used as they are (see the "
               "achieved sizes)" if c["splits"].get("allow_short") else None),
    ("FS-I / NT-I real images", "not stated",
     lambda c: (f"real frames of the {' and '.join(_trainsets_with('same_identity', c))} training originals "
                "that were not used for training or fine-tuning") if _trainsets_with("same_identity", c) else None),
    ("faceless videos", "not stated",
     lambda c: (f"videos without a detectable face are skipped and listed with the reason; the run stops if "
                f"more than {100 * c['preprocess'].get('max_failed_share', 0.2):g} % of a source fails")),
    ("transfer strategy", "'the last two function layers ... or other parts that contain significant features'",
     lambda c: ("the last two function layers of each architecture are trainable, the rest frozen"
                + ("; overridden for " + ", ".join(c["detectors"]["transfer_layers"])
                   if c["detectors"].get("transfer_layers") else ""))),
    ("backbone initialisation", "not stated",
     lambda c: f"XceptionNet / EfficientNet from {c['detectors'].get('weights') or 'random initialisation'}"),
    ("Grad-CAM", "code: tf-explain explain(class_index=0, no guided gradients) of its sigmoid, which was "
     "P(real) (flow_from_directory's alphabetical classes), blended onto the face (VIRIDIS, weight 0.7), "
     "min-max to uint8, JET; text: Guided Grad-CAM of 'fake', pure heatmaps",
     lambda c: "; ".join(GRADCAM_VARIANT_TEXT[v] for v in _gradcam(c)["variant"])),
    ("Grad-CAM, remaining differences from the code", "one explain() per image on the test folder's files",
     lambda c: ("P(real) is taken as 1 - P(fake) of our detectors (exact: the negated cam); gradients are "
                "computed on batches (equal to float round-off); a constant map gives zeros, where explain() "
                "divides 0 by 0; faces are our aligned uint8 crops, not re-read with cv2.imread and resized; "
                f"{min(_gradcam(c)['images'], c['splits']['test'] // 2)} seeded fakes per test set, where the "
                "code took every fake of the folder that ran without error; the code wrote the JET maps with "
                "cv2.imwrite under the frame's file name (lossy if those were JPEG, which the release does not "
                "say) and compared the re-read files; we compare the images in memory")
     if "study_code" in _gradcam(c)["variant"] else None),
    ("Grad-CAM faithfulness", "not tested",
     lambda c: (f"deletion test (an addition): top {100 * _gradcam(c)['faithfulness']['fraction']:g} % of each "
                f"map occluded vs. the same mask at a random place, {_gradcam(c)['faithfulness']['images']} "
                "images per detector, test set and variant") if _gradcam(c)["faithfulness"]["images"] else None),
    ("causal effect", "paper: expected correctness under intervention; code: spread of the mean output",
     lambda c: {"spread": "spread (max - min) of the mean output over the intervention grid, as the study's code",
                "correctness": "expected correctness under intervention, as the paper's text"}
     [c["causal"].get("measure", "spread")]),
    ("causal intervention grid", "code: linspace over min(observed min, 1) .. max(observed max, 0), the range "
     "taken from other batches of the same shuffled test folder than the effect is averaged over",
     lambda c: {"observed": "linspace over each neuron's observed min .. max on the very samples the effect is "
                            "averaged over, unclipped",
                "study_code": "as the code: range from a second seeded draw of as many images of the same test "
                              "set, clipped to at most 1 (low end) and at least 0 (high end)"}
     [c["causal"].get("grid_range", "observed")]),
    ("causal samples", "code: 30 batches of 64 from a shuffled flow_from_directory generator (1,920 images, "
     "drawn with repeats across epochs; its output was P(real))",
     lambda c: "a seeded balanced draw without repeats (half real, half fake); P(fake) output, whose spread "
               "equals that of P(real)"),
    ("Finding 4 reading", "text: some neurons are top contributors on all five datasets (Figure 5: 'all "
     "five' the most frequent count)",
     lambda c: "both readings reported: lenient (every detector has a neuron top-1/16 on all "
               f"{count_word(_analysed_sets(c))} datasets) and the paper's ('all {count_word(_analysed_sets(c))}' "
               "the most frequent count), each against a baseline that shuffles "
               f"each dataset's ranking ({c['causal'].get('permutations', 1000)} permutations)"),
    ("uncertainty", "none reported",
     lambda c: (f"{c['evaluation'].get('bootstrap', 1000)} video-bootstrap resamples give 95 % intervals "
                "for every accuracy (an addition)") if c["evaluation"].get("bootstrap", 0) else None),
    ("labels", "real / fake", lambda c: "1 = fake, 0 = real throughout"),
    ("PixelAnomaly (beyond the study)", "not in the study; seed 002 (Khodabakhsh & Busch): PixelCNN++ "
     "(3 blocks x 5 ResNet layers x 160 filters, 94 M parameters, 10 logistics, 5 epochs at 1e-4) on real "
     "faces, then a LeNet-5-style classifier (933,442 parameters, two outputs, 25 epochs at 1e-3)",
     lambda c: ("a PixelCNN of one 7x7 type-A and four residual 3x3 type-B masked convolutions of 32 channels "
                "(~43 k parameters), 3 logistics per channel, channels independent given the earlier pixels, "
                f"{_anomaly(c)['pixel_epochs']} epochs at {_anomaly(c)['pixel_learning_rate']:g} (batch "
                f"{_anomaly(c)['pixel_batch_size']}) on the real images of each original "
                "detector's training part, frozen under every strategy; a one-sigmoid LeNet-style classifier "
                "trained like the other detectors") if "PixelAnomaly" in _trained_architectures(c) else None),
    ("adversarial strategy", "not in the study (three strategies: original, transfer, merge)",
     lambda c: _adversarial(c["detectors"]) if "adversarial" in c["detectors"]["strategies"] else None),
)


def _anomaly(config: dict) -> dict:
    """The detectors.anomaly section with the schema's defaults (a partial config may lack it)."""
    return {"pixel_epochs": 5, "pixel_learning_rate": 0.0001, "pixel_batch_size": 16,
            **config["detectors"].get("anomaly", {})}


def _trained_architectures(config: dict) -> list[str]:
    """Every architecture a run trains: the detectors' and the leave-one-out protocol's."""
    return [*config["detectors"]["architectures"], *(config.get("loo") or {}).get("architectures", [])]


def _adversarial(detectors: dict) -> str:
    """What the adversarial strategy (beyond the study) does, and where it departs from seed paper 001."""
    adv = {"strength": 1.0, "schedule": "dann", "gamma": 10.0, "domain_weight": 1.0, **detectors.get("adversarial", {})}
    schedule = (f"lambda ramped to {adv['strength']:g} along DANN's schedule (gamma {adv['gamma']:g})"
                if adv["schedule"] == "dann" else f"constant lambda {adv['strength']:g}")
    return ("beyond the study, after seed paper 001 (domain-adaptation detector): the original detector is "
            "fine-tuned (every layer, on the merge strategy's images) with a domain classifier, a copy of its "
            "fake-classifier head behind a gradient reversal, telling the training set's images from FS/NT's; "
            f"{schedule}, domain loss weight {adv['domain_weight']:g}. Unlike the paper, the FS/NT (target) "
            "images keep their real/fake labels in the fake loss, the domain pair is the training set vs. the "
            "fine-tuning sets (reals included), the paper's own lambda and schedule are not stated and are "
            "DANN's, and the kept detector is the plain one (domain branch dropped)")


def _trainsets_with(role: str, config: dict) -> list[str]:
    """Training sets that have a dataset of ``role`` (RQ2: ``specialised``, ``same_identity``), in config order."""
    return list(dict.fromkeys(s["trainset"] for s in config.get("datasets", {}).values()
                              if s.get("role") == role and s.get("trainset")))


def _analysed_sets(config: dict) -> int:
    """Datasets every RQ3/RQ4 analysis runs on: the detector's own test set and the unseen ones."""
    return 1 + sum(s.get("role") == "unseen" for s in config.get("datasets", {}).values())


def count_word(n: int) -> str:
    """``5 -> "five"`` (up to ten; digits beyond)."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def _gradcam(config: dict) -> dict:
    """The gradcam section with the schema's defaults (a partial config may lack it)."""
    g = config.get("gradcam", {})
    deletion = {"images": 100, "fraction": 0.1, **g.get("faithfulness", {})}
    return {"images": 1000, "variant": ["study_code", "heatmap"], **g, "faithfulness": deletion}


GRADCAM_VARIANT_TEXT = {
    "study_code": "study_code: the code's computation (P(real), VIRIDIS overlay, min-max, JET, multichannel SSIM)",
    "heatmap": "heatmap: pure min-max map of P(fake) without the face, SSIM on the grey map (no overlay, "
               "no JET, the other class)",
    "guided": "guided: the text's Guided Grad-CAM of 'fake' (rectified cam x guided backpropagation, the "
              "largest absolute value over colour channels), SSIM on the JET rendering",
}


def _get(config: dict, dotted: str):
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def show(v) -> str:
    """A config value as the deviations table shows it (thousands separators, lists joined, None as a dash)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "none"
    if isinstance(v, dict):
        return ", ".join(f"{k} {show(x)}" for k, x in v.items())
    return "—" if v is None else str(v)


# The study's size of each part, from its splits.* values above (val and finetune_val: our reading of its code)
_STUDY = {key: value for key, value, *_ in PAPER_SCALE}
STUDY_PART_SIZES = {
    "train": _STUDY["splits.train"], "val": _STUDY["splits.val"], "test": _STUDY["splits.test"],
    "finetune": _STUDY["splits.finetune_own"]
    + _STUDY["splits.finetune_per_unseen"] * len(_STUDY["splits.finetune_from"]),
    "finetune_val": _STUDY["splits.val"]
    + _STUDY["splits.finetune_val_per_unseen"] * len(_STUDY["splits.finetune_from"]),
}


def achieved_deviations(splits: pd.DataFrame) -> list[dict]:
    """One row per split part whose achieved size differs from the study's (``results/splits/summary.csv``)."""
    rows = []
    made = splits[splits["dataset"].fillna("") != ""] if "dataset" in splits else splits.iloc[0:0]
    for r in made.itertuples():
        study = STUDY_PART_SIZES.get(r.part)
        if study is None or int(r.actual) == study:
            continue
        asked = "" if int(r.actual) == int(r.requested) else f" of {int(r.requested):,} configured"
        rows.append(dict(kind="achieved", aspect=f"{r.dataset}/{r.part} images", config="splits", study=f"{study:,}",
                         here=f"{int(r.actual):,}{asked}", ratio=int(r.actual) / study))
    return rows


def deviations(config: dict, splits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every way this run departs from the study's protocol, from the resolved config and, where given,
    the sizes the splits achieved.

    Returns
    -------
    DataFrame
        ``kind`` (data / achieved / scale / decision), ``aspect``, ``config`` (key), ``study``, ``here``,
        ``ratio`` (here / study for numbers, else NaN). Scale rows appear only where the config differs
        from the study; achieved rows where a part's size differs from the study's, whatever the config
        asked; decisions where they apply to this run.
    """
    rows = [] if splits is None else achieved_deviations(splits)
    for key, study, what, *effective in PAPER_SCALE:
        try:
            here = effective[0](config) if effective else _get(config, key)
        except (KeyError, TypeError):  # a partial config: judge the key alone
            here = _get(config, key)
        if here is None or _same(here, study):
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (here, study))
        ratio = here / study if numbers else np.nan
        rows.append(dict(kind="scale", aspect=what, config=key, study=show(study), here=show(here),
                         ratio=ratio))
    for aspect, study, rule in DECISIONS:
        here = rule(config)
        if here:
            kind = "data" if aspect in ("data", "compression") else "decision"
            rows.append(dict(kind=kind, aspect=aspect, config="", study=study, here=here, ratio=np.nan))
    order = {"data": 0, "achieved": 1, "scale": 2, "decision": 3}
    out = pd.DataFrame(rows, columns=["kind", "aspect", "config", "study", "here", "ratio"])
    return out.sort_values("kind", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
