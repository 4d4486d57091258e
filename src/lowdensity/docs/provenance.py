"""Which code, configuration and machine produced a run's numbers: the stamp every generated page carries."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from pathlib import Path


def git_commit(repo: str | Path = ".") -> str:
    """The checked-out commit (short hash, `-dirty` when tracked files differ from it), or `unknown` outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_models() -> list[str]:
    """The GPUs `nvidia-smi` lists (none where it is absent or finds none); no torch import, so it is cheap."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and SLURM set), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_description() -> str:
    """`2 cores, AMD EPYC 7B13, no GPU`: what a reader needs to compare timings and rounding."""
    gpus = gpu_models()
    gpu_text = ", ".join(f"{gpus.count(g)}× {g}" for g in dict.fromkeys(gpus)) if gpus else "no GPU"
    return f"{usable_cores()} cores, {cpu_model()}, {gpu_text}"


def stamp(config_label: str, commit: str, machine: str, date: str | None = None) -> str:
    """The line at the top of a run's page: configuration, commit, machine and the date of the rendering."""
    date = date or datetime.date.today().isoformat()
    return (
        f'!!! info "Provenance"\n    Rendered on {date} from the run of configuration `{config_label}` '
        f"at commit `{commit}` on {machine}.\n"
    )
