"""The Snakemake DAG on the tiny configuration (configs/tiny.yaml)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


# the rules call the `lowdensity` entry point installed beside this interpreter
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(exe, repo, workdir, *args, configs=("configs/tiny.yaml",)):
    cmd = [exe, "-s", str(repo / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", *[str(repo / c) if not str(c).startswith("/") else str(c) for c in configs], *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(output: str) -> dict:
    """The 'Job stats' table of a dry run as {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, snakemake_exe, repo):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(snakemake_exe, repo, workdir)
    return workdir


def test_tiny_dag_produces_gathered_baseline_samples(tiny_run):
    samples = np.load(tiny_run / "results/samples/baseline.npz")
    assert samples["images"].shape == (20, 1, 8, 8) and samples["images"].dtype == np.uint8
    assert samples["labels"].tolist() == [i % 10 for i in range(20)]
    assert samples["seeds"].tolist() == [1_000_000 + i for i in range(20)]
    assert samples["images"].std() > 5, "samples are constant"
    for path in ["results/samples/baseline_grid.png", "results/data/train_grid.png", "results/ddpm/loss.csv",
                 "results/ddpm/checkpoint.pt", "results/data/val.npz"]:
        assert (tiny_run / path).exists(), path


def test_rerun_does_nothing(tiny_run, snakemake_exe, repo):
    assert planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n")) == {}


def test_editing_sampling_reruns_only_sampling(tiny_run, snakemake_exe, repo, tmp_path):
    override = tmp_path / "seed.yaml"
    override.write_text("sampling:\n  seed: 5\n")
    jobs = planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n", configs=("configs/tiny.yaml", str(override))))
    assert jobs == {"sample_baseline": 2, "gather_baseline": 1, "baseline_grid": 1, "all": 1}


def test_editing_training_reruns_training_and_downstream(tiny_run, snakemake_exe, repo, tmp_path):
    override = tmp_path / "lr.yaml"
    override.write_text("ddpm:\n  train:\n    lr: 0.002\n")
    jobs = planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n", configs=("configs/tiny.yaml", str(override))))
    assert jobs == {"train_ddpm": 1, "sample_baseline": 2, "gather_baseline": 1, "baseline_grid": 1, "all": 1}


def test_invalid_config_fails_naming_the_key(tiny_run, snakemake_exe, repo, tmp_path):
    override = tmp_path / "bad.yaml"
    override.write_text("sampling:\n  shards: many\n")
    cmd = [snakemake_exe, "-s", str(repo / "Snakefile"), "-d", str(tiny_run), "-n",
           "--configfile", str(repo / "configs/tiny.yaml"), str(override)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode != 0
    assert "config key 'sampling.shards'" in result.stdout + result.stderr
