"""The command line: one `dfstudy` command over the stages, argparse subcommands, rules that name real ones."""

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfstudy.cli import COMMANDS, run_subcommands

ROOT = Path(__file__).resolve().parents[1]


def test_run_subcommands_passes_the_rest_to_the_chosen_command(capsys):
    seen = []

    def extract(argv):
        p = argparse.ArgumentParser(prog="tool extract")
        p.add_argument("--shard", type=int)
        seen.append(("extract", p.parse_args(argv).shard))

    commands = {"extract": ("one shard", extract), "merge": ("the shards", lambda argv: seen.append(("merge", argv)))}
    run_subcommands("tool", "test tool", commands, ["extract", "--shard", "3"])
    run_subcommands("tool", "test tool", commands, ["merge", "--out", "x", "a"])
    assert seen == [("extract", 3), ("merge", ["--out", "x", "a"])]
    with pytest.raises(SystemExit) as exc:  # --help after the subcommand is the subcommand's own
        run_subcommands("tool", "test tool", commands, ["extract", "--help"])
    assert exc.value.code == 0 and "usage: tool extract [-h] [--shard SHARD]" in capsys.readouterr().out
    for argv in ([], ["split"]):
        with pytest.raises(SystemExit) as exc:
            run_subcommands("tool", "test tool", commands, argv)
        assert exc.value.code == 2
    assert "merge" in capsys.readouterr().err


def test_dfstudy_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "dfstudy", "--help"], capture_output=True, text=True, check=True).stdout
    listed = re.findall(r"^    (\S+)", out, flags=re.M)
    assert listed == list(COMMANDS)
    for module, _ in COMMANDS.values():
        assert importlib.util.find_spec(module) is not None, module


def _rule_commands():
    """(module, first word) of every `python -m dfstudy.<module> ...` in the rules."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    return sorted(set(re.findall(r"python -m (dfstudy\.\w+) (\S+)", text)))


def test_rules_call_existing_commands(capsys):
    calls = _rule_commands()
    assert ("dfstudy.faces", "extract") in calls and ("dfstudy.analyse", "--model") in calls
    assert ("dfstudy.similarity", "compare") in calls and ("dfstudy.faces", "merge") in calls
    for module, first in calls:
        argv = ["--help"] if first.startswith("-") else [first, "--help"]
        with pytest.raises(SystemExit) as exc:
            importlib.import_module(module).main(argv)
        assert exc.value.code == 0, (module, first)
        usage = capsys.readouterr().out
        assert "usage:" in usage and (first.startswith("-") or f" {first} " in usage.split("\n")[0] + " "), usage


def test_snakemake_files_are_snakefmt_clean():
    """The Snakefile and rules/*.smk as snakefmt writes them (line length from pyproject.toml)."""
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
