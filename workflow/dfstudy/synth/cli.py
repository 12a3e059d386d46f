"""``python -m dfstudy.synth``: render the corpus and write its ``corpus.csv``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from dfstudy.synth.corpus import synthesize_corpus

log = logging.getLogger(__name__)


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
