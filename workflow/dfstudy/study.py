"""The study's vocabulary, built once from the resolved config and read by every analysis module.

Training sets, strategies, architectures, the role of every dataset and the detectors' study names all come
from ``config.datasets`` and ``config.detectors``; no other module lists them. :data:`PAPER` is the study's
own configuration, the default of every command that is run by hand.

Study names follow the paper: ``<architecture><n>`` with n = 1, 2, 3 for original, transfer and merge on the
first training set and 4, 5, 6 on the second (``MesoNet5`` = MesoNet fine-tuned on F2F by transfer). Further
training sets continue the count (7-9 for a third); a strategy beyond the study's three numbers after all of
those, one number per training set, so the paper's names never change.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

__all__ = ["STRATEGIES", "STRATEGY_REFERENCES", "PAPER_TABLE_ORDER", "Study", "PAPER", "add_argument"]

# The study's augmentation strategies, in the order of their study numbers.
STRATEGIES = ("original", "transfer", "merge")
# Strategies beyond the study's three: where each comes from, as the comparison of approaches names it.
STRATEGY_REFERENCES = {"adversarial": "domain-adversarial fine-tuning (seed 001)"}
# The paper's Table IV lists architectures in this order; others follow in config order.
PAPER_TABLE_ORDER = ("XceptionNet", "MesoInception", "MesoNet", "EfficientNet", "ShallowNet")
# Dataset roles (config.datasets.<name>.role)
ROLES = ("train", "unseen", "specialised", "same_identity")


@dataclass(frozen=True)
class Study:
    """What one run of the study trains and evaluates.

    ``specialised`` and ``same_identity`` map each training set to its sets of that role (RQ2: CELEB -> CELEB-M,
    F2F -> FS-I, NT-I). ``identity_pairs`` maps a same-identity set to the unseen set of the same source and
    fake method (FS-I -> FS): Finding 2 compares the two.
    """

    trainsets: tuple[str, ...] = ("CELEB", "F2F")
    architectures: tuple[str, ...] = ("MesoNet", "MesoInception", "ShallowNet", "XceptionNet", "EfficientNet")
    strategies: tuple[str, ...] = STRATEGIES
    unseen: tuple[str, ...] = ("FS", "NT", "DF", "DFD")
    specialised: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"CELEB": ("CELEB-M",)})
    same_identity: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"F2F": ("FS-I", "NT-I")})
    identity_pairs: dict[str, str] = field(default_factory=lambda: {"FS-I": "FS", "NT-I": "NT"})
    causal_architectures: tuple[str, ...] = ("MesoNet", "MesoInception", "ShallowNet")

    def __post_init__(self):
        for name in ("trainsets", "architectures", "strategies", "unseen", "causal_architectures"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("specialised", "same_identity"):
            object.__setattr__(self, name, {k: tuple(v) for k, v in getattr(self, name).items()})
        object.__setattr__(self, "identity_pairs", dict(self.identity_pairs))

    # ---------------------------------------------------------------------------------------------- build

    @classmethod
    def from_config(cls, config: dict) -> Study:
        """The study a resolved (validated) config asks for.

        The study's own datasets come in the paper's order, then any others in config order: Snakemake
        merges the files given with ``--configfile`` before the Snakefile's ``configfile:``, so the merged
        order of ``datasets`` puts the keys a user's file names first.
        """
        detectors = config["detectors"]
        paper = [*PAPER.evaluation_sets, *config["datasets"]]
        datasets = {n: config["datasets"][n] for n in sorted(config["datasets"], key=paper.index)}
        trainsets = tuple(detectors["trainsets"])

        def by_trainset(role):
            return {t: tuple(n for n, s in datasets.items() if s["role"] == role and s.get("trainset") == t)
                    for t in trainsets if any(s["role"] == role and s.get("trainset") == t for s in datasets.values())}

        def unseen_twin(name):
            kind = (datasets[name]["source"], datasets[name]["method"])
            twins = (n for n, s in datasets.items() if s["role"] == "unseen" and (s["source"], s["method"]) == kind)
            return next(twins, None)

        twins = {n: unseen_twin(n) for n, s in datasets.items() if s["role"] == "same_identity"}
        causal = config.get("causal", {}).get("architectures")
        return cls(
            trainsets=trainsets,
            architectures=tuple(detectors["architectures"]),
            strategies=tuple(detectors["strategies"]),
            unseen=tuple(n for n, s in datasets.items() if s["role"] == "unseen"),
            specialised=by_trainset("specialised"),
            same_identity=by_trainset("same_identity"),
            identity_pairs={n: twin for n, twin in twins.items() if twin is not None},
            causal_architectures=tuple(a for a in (causal if causal is not None else detectors["architectures"])
                                       if a in detectors["architectures"]),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Study:
        return cls(**json.loads(text))

    # ---------------------------------------------------------------------------------------------- names

    def number(self, trainset: str, strategy: str) -> int:
        """The detector's study number (1-6 in the paper); see the module docstring."""
        t = self.trainsets.index(trainset)
        if strategy in STRATEGIES:
            return 1 + len(STRATEGIES) * t + STRATEGIES.index(strategy)
        extra = [s for s in self.strategies if s not in STRATEGIES]
        return 1 + len(STRATEGIES) * len(self.trainsets) + len(self.trainsets) * extra.index(strategy) + t

    def detector_name(self, arch: str, trainset: str, strategy: str) -> str:
        """``("MesoNet", "F2F", "transfer") -> "MesoNet5"``."""
        return f"{arch}{self.number(trainset, strategy)}"

    def detectors(self, architectures=None) -> list[tuple[str, str, str]]:
        """Every (architecture, trainset, strategy) of the run, architecture-major, in study-number order."""
        archs = self.architectures if architectures is None else architectures
        keys = [(a, t, s) for a in archs for t in self.trainsets for s in self.strategies]
        return sorted(keys, key=lambda k: (archs.index(k[0]), self.number(k[1], k[2])))

    def parse_detector(self, name: str) -> tuple[str, str, str]:
        """Inverse of :meth:`detector_name`: ``"MesoNet5" -> ("MesoNet", "F2F", "transfer")``."""
        names = {self.detector_name(*k): k for k in self.detectors()}
        if name not in names:
            raise ValueError(f"not a detector of this study: {name!r}")
        return names[name]

    def name_of_path(self, detector: str) -> str:
        """``"CELEB/MesoNet/transfer" -> "MesoNet2"``; anything else is returned unchanged."""
        parts = detector.split("/")
        if len(parts) != 3 or parts[0] not in self.trainsets or parts[2] not in self.strategies:
            return detector
        trainset, arch, strategy = parts
        return self.detector_name(arch, trainset, strategy)

    # ---------------------------------------------------------------------------------------------- roles

    @property
    def specialised_sets(self) -> tuple[str, ...]:
        return tuple(d for sets in self.specialised.values() for d in sets)

    @property
    def same_identity_sets(self) -> tuple[str, ...]:
        return tuple(d for sets in self.same_identity.values() for d in sets)

    @property
    def evaluation_sets(self) -> tuple[str, ...]:
        """Every test set in table order: training sets, unseen, specialised, same identity."""
        return (*self.trainsets, *self.unseen, *self.specialised_sets, *self.same_identity_sets)

    def role(self, dataset: str) -> str:
        """``train``, ``unseen``, ``specialised`` or ``same_identity``."""
        for role, sets in (("train", self.trainsets), ("unseen", self.unseen),
                           ("specialised", self.specialised_sets), ("same_identity", self.same_identity_sets)):
            if dataset in sets:
                return role
        raise ValueError(f"{dataset!r} is not a dataset of this study")

    def words(self) -> dict[str, str]:
        """The vocabulary as the report captions write it (reports/*.rst read ``snakemake.params.words``)."""
        def listing(names, last="and"):
            names = list(names)
            return f"{', '.join(names[:-1])} {last} {names[-1]}" if len(names) > 1 else "".join(names)

        # each number listed: with a strategy beyond the study's three a training set's numbers are not a range
        numbers = [f"``<Arch>{'/'.join(str(self.number(t, s)) for s in self.strategies)}`` = {t} "
                   + " / ".join(self.strategies) for t in self.trainsets]
        return dict(
            trainsets=listing(self.trainsets, "or"),
            unseen=listing(self.unseen),
            n_unseen=str(len(self.unseen)),
            numbering=", ".join(numbers),
            specialised="; ".join(f"{t}-trained on {listing(s)}" for t, s in self.specialised.items()) or "none",
            same_identity="; ".join(f"{t}-trained on {listing(s)}" for t, s in self.same_identity.items()) or "none",
            identity_pairs=listing(f"{a} with {b}" for a, b in self.identity_pairs.items()) or "none",
        )

    # ---------------------------------------------------------------------------------------------- order

    @property
    def table_architectures(self) -> tuple[str, ...]:
        """Architectures in the paper's table order, then any others in config order."""
        return (*(a for a in PAPER_TABLE_ORDER if a in self.architectures),
                *(a for a in self.architectures if a not in PAPER_TABLE_ORDER))

    def rank(self, values, order) -> list[int]:
        """Position of each value in ``order`` (unknown values last), for sorting tables."""
        return [order.index(v) if v in order else len(order) for v in values]


PAPER = Study()


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--study JSON``: the run's vocabulary (the rules pass it); the paper's study when left out."""
    parser.add_argument("--study", type=Study.from_json, default=PAPER,
                        help="the study's vocabulary as JSON (dfstudy.study.Study.to_json); default: the paper's")
