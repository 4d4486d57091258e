"""What SLURM saw of the tiny DAG run by `make slurm-test` (tests/slurm/run.sh): every job
completed, and exactly the rules whose stage asks for a GPU were submitted with --gpus.
Skipped unless LOWDENSITY_SLURM_JOBS names the `scontrol show job -o` dump of that run."""

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

JOBS = os.environ.get("LOWDENSITY_SLURM_JOBS")
pytestmark = [
    pytest.mark.skipif(not JOBS, reason="run by make slurm-test on a SLURM cluster"),
    pytest.mark.reads_tiny_run,
]

# rules whose stage in config.yaml's `resources` has gpu: 1 (train_*, sample*, features, metrics, fit_gaussians)
GPU_RULES = {
    "train_ddpm",
    "sample_baseline",
    "train_gan",
    "sample_gan",
    "train_classifier",
    "train_discriminator",
    "fit_classifier_gaussians",
    "fit_discriminator_gaussians",
    "sample_guided",
    "sample_cell",
    "score_sample_sets",
    "sample_ddim_baseline",
    "sample_ddim_guided",
    "nll",
    "extract_features",
    "reference_neighbours",
    "density_metrics",
    "memorization",
    "fidelity",
    "figA7",
    "fig4b_fidelity",
    "train_minority_classifier",
    "sample_sweep_point",
    "samplers_table",
}


def _jobs() -> dict[str, list[dict]]:
    """The run's jobs (those whose working directory is the run's folder) by rule."""
    by_rule = defaultdict(list)
    workdir = str(Path(os.environ["LOWDENSITY_TINY_RUN"]).resolve())
    for line in Path(JOBS).read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", fields.get("Comment", ""))
        if rule and str(Path(fields.get("WorkDir", "")).resolve()) == workdir:
            by_rule[rule.group(1)].append(fields)
    return by_rule


def test_every_job_completed_and_gpu_rules_asked_for_a_gpu():
    jobs = _jobs()
    assert {"train_ddpm", "sample_baseline", "train_gan", "fig7", "table1"} <= set(jobs), sorted(jobs)
    for rule, entries in jobs.items():
        for job in entries:
            assert job["JobState"] == "COMPLETED", (rule, job["JobId"], job["JobState"])
            asked = "gpu" in job.get("TresPerJob", "")
            assert asked == (rule in GPU_RULES), (rule, job.get("TresPerJob"))
    assert sum(len(jobs[r]) for r in GPU_RULES & set(jobs)) > 10
