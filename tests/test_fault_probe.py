"""The fault probe at the command line: each damaged artefact or bad configuration, fed to the
command a rule runs, ends with exit status 1, one line naming the file or key and the fix (the
exact `snakemake --forcerun <rule> <target>` for an artefact), no traceback, and no output.

The readers' own checks are tested one by one in test_bad_input.py; here the same faults go
through `lowdensity <stage>` and `snakemake` as a user meets them.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lowdensity.stages.evaluation import labels_path, save_features

STAGE = [sys.executable, "-m", "lowdensity.cli"]
INTERVALS = {"bootstrap": 20, "vendi_bootstrap": 5, "level": 0.9, "seed": 0, "vendi_orders": [1]}
DENSITY = {"knn_k": 3, "lof_k": 3, "precision_k": 3, "intervals": INTERVALS, "knn_backend": "torch"}
REFERENCE = "results/features/classifier/reference.npy"
SET = "results/features/classifier/baseline.npy"
NEIGHBOURS = "results/metrics/classifier/reference_neighbours.npz"
METRICS = "results/metrics/classifier/baseline.csv"


def run(args, cwd):
    return subprocess.run([*STAGE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def density_metrics(cwd):
    args = ["density-metrics", "--params", json.dumps(DENSITY), "--extractor", "classifier", "--reference"]
    args += [REFERENCE, "--neighbours", NEIGHBOURS, "--set_name", "baseline", "--features", SET]
    return run(args + ["--metrics_csv", METRICS, "--summary_csv", METRICS[:-4] + "_summary.csv"], cwd)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """A folder with a reference, a sample set's features and the reference's neighbours, from
    which `density-metrics` succeeds."""
    root = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(0)
    for path, n in ((REFERENCE, 40), (SET, 12)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        save_features(str(root / path), rng.normal(size=(n, 4)), np.arange(n) % 2)
    done = run(
        ["reference-neighbours", "--params", json.dumps(DENSITY), "--reference", REFERENCE, "--out", NEIGHBOURS], root
    )
    assert done.returncode == 0, done.stderr[-2000:]
    done = density_metrics(root)
    assert done.returncode == 0, done.stderr[-2000:]
    (root / METRICS).unlink()
    return root


def damage_features(path, how):
    features, labels = np.load(path), np.load(labels_path(path))
    if how == "nan row":
        features[3, 1] = np.nan
    elif how == "inf row":
        features[0, 0] = np.inf
    elif how == "empty":
        features, labels = features[:0], labels[:0]
    elif how == "other width":
        features = np.ones((len(labels), 5), dtype=np.float32)
    elif how == "unknown label":
        labels[2] = 37
    np.save(path, features)
    np.save(labels_path(path), labels)


def damage_neighbours(path, how):
    with np.load(path) as f:
        distances, indices = f["distances"].copy(), f["indices"].copy()
    if how == "nan distance":
        distances[5, 0] = np.nan
    elif how == "index outside":
        indices[1, 1] = 10_000
    np.savez(path, distances=distances, indices=indices)


CASES = {
    # damage → (file damaged, rule that rebuilds it, what the line says)
    "features: nan row": (SET, "extract_features", "row 3 holds NaN or infinite values"),
    "features: inf row": (SET, "extract_features", "row 0 holds NaN or infinite values"),
    "features: empty": (SET, "extract_features", "no rows"),
    "features: other width": (SET, "extract_features", "features of width 5, but the reference's have 4"),
    "features: unknown label": (SET, "extract_features", "labels [37] that the reference has no images of"),
    "features: truncated": (SET, "extract_features", "cannot be read"),
    "reference: truncated": (REFERENCE, "extract_features", "cannot be read"),
    "neighbours: nan distance": (NEIGHBOURS, "reference_neighbours", "holds NaN, infinite or negative distances"),
    "neighbours: index outside": (NEIGHBOURS, "reference_neighbours", "indices outside the reference's 0 … 39"),
    "neighbours: random bytes": (NEIGHBOURS, "reference_neighbours", "cannot be read"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_evaluation_artefact_stops_its_stage_in_one_line(healthy, tmp_path, case):
    work = tmp_path / "work"
    shutil.copytree(healthy, work)
    damaged, rule, says = CASES[case]
    how = case.split(": ", 1)[1]
    if how in ("truncated", "random bytes"):
        data = (work / damaged).read_bytes()
        (work / damaged).write_bytes(data[: len(data) // 2] if how == "truncated" else bytes(range(256)) * 3)
    elif damaged == NEIGHBOURS:
        damage_neighbours(work / damaged, how)
    else:
        damage_features(work / damaged, how)
    result = density_metrics(work)
    lines = [line for line in result.stderr.splitlines() if line.startswith("lowdensity density-metrics: error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1 and damaged in lines[0] and says in lines[0], result.stderr[-2000:]
    assert lines[0].endswith(f"snakemake --forcerun {rule} {damaged}"), lines[0]
    assert not (work / METRICS).exists()


def ddpm_weights(path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "random bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif how == "code inside":
        torch.save({"state_dict": RunsCode()}, path)
    else:
        torch.save({"state_dict": {"out.weight": torch.full((2, 2), float("nan"))}, "arch": {}}, path)


class RunsCode:
    def __reduce__(self):
        return (print, ("this must not run",))


@pytest.mark.parametrize(
    "how, says",
    [
        ("random bytes", "is not a weights file written by this pipeline"),
        ("code inside", "is not a weights file written by this pipeline"),
        ("nan weights", "tensor 'state_dict.out.weight' holds 4 NaN or infinite values of 4"),
    ],
)
def test_damaged_ddpm_weights_stop_sampling_in_one_line(tmp_path, how, says):
    ddpm_weights(tmp_path / "results/ddpm/model.pt", how)
    sampling = {"num_samples": 4, "shards": 1, "seed": 0, "steps": 10, "method": "ddpm", "eta": 0.0, "batch_size": 4}
    out = "results/samples/baseline/shard_0.npz"
    args = ["sample", "--params", json.dumps(sampling), "--model", "results/ddpm/model.pt", "--shard", "0"]
    result = run(args + ["--out", out, "--device", "cpu"], tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.startswith("lowdensity sample: error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert len(lines) == 1 and says in lines[0], result.stderr[-2000:]
    assert lines[0].endswith("snakemake --forcerun train_ddpm results/ddpm/model.pt")
    assert "this must not run" not in result.stdout + result.stderr
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize(
    "override, says",
    [
        ("guidance: {alpha: .nan}", "config key 'guidance.alpha': nan is not a finite number"),
        ("ddpm: {train: {lr: .inf}}", "config key 'ddpm.train.lr': inf is not a finite number"),
        ("sampling: {num_samples: 1000000000}", "config key 'sampling.num_samples': stage sample_baseline would do"),
        ("guidance: {step_scale: sideways}", "config key 'guidance.step_scale': 'sideways' is not one of"),
    ],
)
def test_a_bad_configuration_is_refused_before_any_job(repo, snakemake_exe, tmp_path, override, says):
    """Refused while the workflow is read: even a dry run names the key, and no job starts (so a
    trained model that an edited configuration would retrain is never deleted)."""
    extra = tmp_path / "override.yaml"
    extra.write_text(override + "\n")
    cmd = [snakemake_exe, "-s", str(repo / "Snakefile"), "-d", str(tmp_path / "work"), "--cores", "1", "-n"]
    result = subprocess.run(
        [*cmd, "--configfile", str(repo / "configs/tiny.yaml"), str(extra)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0 and says in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]
    assert not (tmp_path / "work/results").exists()
