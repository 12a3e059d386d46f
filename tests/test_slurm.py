"""profiles/slurm on a real SLURM: the preprocessing, split and leakage-audit stages of the smoke study go
through sbatch, and give byte-identical splits and audit to a local run of the same targets.

Needs a SLURM partition that takes jobs (default `dfstudy`, as tests/slurm/setup_slurm.sh makes on this
machine) and snakemake-executor-plugin-slurm. Otherwise it is skipped, saying why. With
DFSTUDY_SLURM_SETUP=1 (and root) the test runs tests/slurm/setup_slurm.sh itself first.

Environment: DFSTUDY_SLURM_PARTITION (default dfstudy), DFSTUDY_SLURM_ACCOUNT (default: none),
DFSTUDY_SLURM_WORKDIR (a directory that compute nodes see, for a real multi-node cluster; default: pytest's
tmp_path), DFSTUDY_SLURM_SETUP=1 (run the setup script when no partition is up).
"""

import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "tests" / "slurm" / "setup_slurm.sh"
PARTITION = os.environ.get("DFSTUDY_SLURM_PARTITION", "dfstudy")
CONFIGS = [REPO / "config" / "config.yaml", REPO / "tests" / "smoke.yaml", REPO / "tests" / "slurm" / "overlay.yaml"]
# Corpus -> video index -> face crops (2 shards x 4 sources) -> manifests -> splits -> leakage audit: 19 jobs.
TARGETS = ["results/splits/audit.csv"]
RUN_TIMEOUT_S = 420  # one workflow run; the test as a whole takes about 3 minutes on 2 cores


def _run(cmd, timeout, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _partition_up():
    """None when PARTITION has a node that takes jobs, else why not."""
    for tool in ("sbatch", "sinfo", "squeue", "scancel"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
    try:
        states = _run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out (is slurmctld running?)"
    if states.returncode != 0:
        return f"sinfo failed: {states.stderr.strip()}"
    if not set(states.stdout.split()) & {"idle", "mixed", "allocated", "completing"}:
        return f"partition {PARTITION!r} has no node that takes jobs (sinfo: {states.stdout.split() or 'no such partition'})"
    return None


@pytest.fixture(scope="module")
def slurm():
    """Skip unless a SLURM partition takes jobs and the executor plugin is installed."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed: pip install 'snakemake-executor-plugin-slurm>=2.8,<3'")
    why = _partition_up()
    if why and os.environ.get("DFSTUDY_SLURM_SETUP") == "1":
        try:
            done = _run(["bash", str(SETUP)], timeout=1200)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{SETUP} did not finish in 20 minutes")
        if done.returncode == 2:  # cannot here: no root, no apt-get, packages unavailable, foreign slurm.conf
            pytest.skip(f"no SLURM: {SETUP.name} says: {done.stderr.strip().splitlines()[-1]}")
        assert done.returncode == 0, f"{SETUP} failed:\n{done.stderr[-3000:]}"
        why = _partition_up()
    if why:
        pytest.skip(f"no usable SLURM ({why}); run `sudo tests/slurm/setup_slurm.sh` or set DFSTUDY_SLURM_SETUP=1")
    if os.environ.get("SLURM_JOB_ID"):
        pytest.skip("running inside a SLURM job: run the submitting test from a login node or a shell")
    return PARTITION


def _profile_for_this_cluster(dest: Path) -> Path:
    """profiles/slurm with its CHANGE-ME partitions and account set for the test cluster, nothing else changed."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = PARTITION
    profile["default-resources"].pop("slurm_account", None)  # no accounting database: nothing to validate against
    if os.environ.get("DFSTUDY_SLURM_ACCOUNT"):
        profile["default-resources"]["slurm_account"] = os.environ["DFSTUDY_SLURM_ACCOUNT"]
    for resources in profile["set-resources"].values():
        if "slurm_partition" in resources:
            resources["slurm_partition"] = PARTITION
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def _snakemake(workdir: Path, *extra, timeout=RUN_TIMEOUT_S, prefix=None):
    """Run Snakemake on TARGETS in workdir; on timeout stop it (it cancels its SLURM jobs), then cancel what is left."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *map(str, CONFIGS), "--nocolor", *extra, *TARGETS]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # jobs call `python -m dfstudy...`
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # Snakemake cancels its jobs (scancel) on Ctrl-C
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        if prefix:
            _cancel_jobs_named(prefix)
        pytest.fail(f"snakemake did not finish in {timeout} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def _cancel_jobs_named(prefix):
    """scancel, by id, the jobs of this test's run (their names start with its unique prefix)."""
    try:
        queue = _run(["squeue", "-h", "-o", "%i %j"], timeout=20).stdout.split("\n")
        ids = [line.split()[0] for line in queue if line.strip() and line.split()[1].startswith(prefix)]
        if ids:
            _run(["scancel", *ids], timeout=20)
    except (subprocess.TimeoutExpired, OSError, IndexError):
        pass


def _slurm_states(run_id, job_ids):
    """{slurm job id: state} of this run's jobs: from the job completion log (jobcomp/filetxt), else squeue."""
    config = _run(["scontrol", "show", "config"], timeout=20).stdout
    comp_type = re.search(r"^JobCompType\s*=\s*(\S+)", config, re.M)
    comp_loc = re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.M)
    states = {}
    if comp_type and comp_type.group(1) == "jobcomp/filetxt" and comp_loc and Path(comp_loc.group(1)).is_file():
        deadline = time.monotonic() + 30  # slurmctld appends the record as the job ends
        while time.monotonic() < deadline:
            for line in Path(comp_loc.group(1)).read_text().splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                if fields.get("Name") == run_id:
                    states[fields["JobId"]] = fields.get("JobState")
            if job_ids <= set(states):
                return states
            time.sleep(1)
    queue = _run(["squeue", "-h", "--states=all", "--name", run_id, "-o", "%i|%T"], timeout=20).stdout
    states.update(line.split("|", 1) for line in queue.split() if "|" in line)
    return states


def _outputs(workdir: Path):
    """The files the runs must agree on: every split CSV, the audit, the split summary, the skipped videos."""
    files = sorted(p.relative_to(workdir) for p in (workdir / "results" / "splits").rglob("*.csv"))
    files += sorted(p.relative_to(workdir) for p in (workdir / "results" / "faces").glob("*/skipped.csv"))
    return files


@pytest.mark.slow
def test_slurm_profile_runs_the_preprocessing_and_splits_through_sbatch(slurm, tmp_path):
    base = Path(os.environ.get("DFSTUDY_SLURM_WORKDIR", tmp_path)) / f"dfstudy-slurm-{uuid.uuid4().hex[:8]}"
    profile = _profile_for_this_cluster(base / "profile")
    prefix = f"dfstudytest{uuid.uuid4().hex[:8]}"

    started = time.monotonic()
    out = _snakemake(
        base / "slurm",
        "--workflow-profile", str(profile),
        # the test cluster: one node with 2 CPUs and no accounting database, and jobs of a few seconds
        "--jobs", "4", "--max-threads", "1",
        "--slurm-jobname-prefix", prefix,
        "--slurm-status-command", "squeue",  # sacct needs slurmdbd; finished jobs stay in squeue for MinJobAge
        "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
        "--slurm-keep-successful-logs", "--latency-wait", "10",
        prefix=prefix,
    )
    slurm_s = time.monotonic() - started

    # Every job that Snakemake did not run itself went through sbatch, and SLURM saw it complete.
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    assert run_id.startswith(prefix)
    submitted = dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", out))
    remote_rules = re.findall(r"^rule (\w+):$", out, re.M)
    assert len(submitted) == len(remote_rules) > 0, f"{len(remote_rules)} remote jobs, {len(submitted)} sbatch:\n{out[-3000:]}"
    assert "align_faces" in remote_rules and "make_splits" in remote_rules, remote_rules
    states = _slurm_states(run_id, set(submitted))
    assert {i: states.get(i) for i in submitted} == {i: "COMPLETED" for i in submitted}
    for log in submitted.values():  # the plugin's per-job log: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<id>.log
        assert Path(log).is_file() and "/.snakemake/slurm_logs/rule_" in log, log

    # ... and gave what a plain local run of the same targets gives.
    started = time.monotonic()
    _snakemake(base / "local", "--cores", "2")
    local_s = time.monotonic() - started
    files = _outputs(base / "slurm")
    assert Path("results/splits/audit.csv") in files and len(files) > 10, files
    assert files == _outputs(base / "local")
    match, mismatch, errors = filecmp.cmpfiles(base / "slurm", base / "local", files, shallow=False)
    assert not mismatch and not errors, f"differ: {mismatch}, missing: {errors}"
    print(f"SLURM run: {len(submitted)} sbatch jobs in {slurm_s:.0f} s; local run: {local_s:.0f} s")
    shutil.rmtree(base, ignore_errors=True)
