"""How long Snakemake takes to build and plan the paper-scale DAGs (dry runs, nothing executes):
`snakemake --profile slurm --configfile <paper config> -n <target>` from the repository root,
in a working directory that holds only the (empty) weight files the configurations name.

    python benchmarks/dag_speed.py

Prints, per configuration and target, the number of jobs and the wall-clock seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = [
    ("configs/cifar10.yaml", "paper_figures/fig7.pdf"),
    ("configs/cifar10.yaml", "all"),
    ("configs/imagenet64.yaml", "paper_figures/fig7.pdf"),
    ("configs/imagenet64.yaml", "all"),
]


def main():
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    for config, target in CASES:
        with tempfile.TemporaryDirectory() as workdir:
            # the local weight files the paper-scale configurations name: validation checks they exist, a dry
            # run reads nothing
            (Path(workdir) / "data/weights/biggan-deep-128").mkdir(parents=True)
            (Path(workdir) / "data/weights/resnet50_imagenet.pth").touch()
            cmd = [
                exe,
                "--profile",
                "slurm",
                "--configfile",
                config,
                "-n",
                "--quiet",
                "rules",
                "--directory",
                workdir,
                target,
            ]
            start = time.perf_counter()
            result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            seconds = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
        total = re.search(r"^total\s+(\d+)$", result.stdout + result.stderr, re.M)
        print(f"{config:26s} {target:24s} {total.group(1) if total else '?':>6s} jobs  {seconds:5.1f} s")


if __name__ == "__main__":
    main()
