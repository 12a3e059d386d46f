"""The machine that renders the report: hardware and installed software, probed without importing any framework.

:func:`environment` is what the report's Setup section shows next to the Keras backend and version the
model cards recorded at training time.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["SOFTWARE", "environment"]

SOFTWARE = ("snakemake", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "pandas",
            "pyarrow", "scipy", "scikit-learn", "scikit-image", "matplotlib", "seaborn", "tf-explain",
            "opencv-python-headless", "dlib-bin", "face-recognition", "Pillow", "dfstudy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        res = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in res.stdout.splitlines() if line.strip()] if res.returncode == 0 else []


def _keras_backend() -> str:
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def environment() -> dict:
    """Hardware and software of the machine rendering the report, without importing any framework.

    Returns
    -------
    dict
        ``hardware`` (cpu, logical_cores, memory_gib, gpus), ``platform``, ``python``,
        ``keras_backend`` (configured here) and ``software`` (distribution -> version, installed only).
    """
    software = {}
    for name in SOFTWARE:
        try:
            software[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return dict(hardware=dict(cpu=_cpu_model(), logical_cores=os.cpu_count(), memory_gib=_memory_gib(),
                              gpus=_gpus()),
                platform=platform.platform(), python=platform.python_version(),
                keras_backend=_keras_backend(), software=software)
