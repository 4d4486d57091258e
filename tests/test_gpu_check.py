"""`make gpu-check`'s script, checked where there is no GPU: it says so and stops; and its code
runs end to end at toy sizes (`--smoke`), writing the CSV the GPU-hours page reads."""

import subprocess
import sys

import pandas as pd
import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run for minutes")
def test_without_cuda_it_exits_at_once_saying_so(repo, tmp_path):
    out = tmp_path / "gpu.csv"
    result = subprocess.run(
        [sys.executable, str(repo / "benchmarks/gpu_check.py"), "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip().splitlines() == [
        "gpu-check: no CUDA device here; nothing measured (run it on a GPU node)"
    ]
    assert not out.exists()


def test_the_smoke_run_writes_every_part(repo, tmp_path):
    out = tmp_path / "gpu.csv"
    result = subprocess.run(
        [sys.executable, str(repo / "benchmarks/gpu_check.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(out)
    assert list(table["part"]) == ["train_ddpm", "sample_guided", "knn", "precision", "search"]
    assert (table["value"].iloc[:4] > 0).all() and set(table.columns) >= {"date", "commit", "gpu", "unit", "detail"}


def test_the_gpu_hours_page_computes_hours_from_a_recorded_check(repo, tmp_path):
    """With a check recorded, the page says it is measured and on which GPU, and turns its rates
    into hours at the CIFAR-10 configuration's size: 800,000 steps × 128 images at 1,000 images/s
    is 28.44 hours; 50,000 images at 0.36 s each 5 hours."""
    from lowdensity.docs.static_pages import render_gpu_hours

    runs = tmp_path / "benchmarks/runs"
    runs.mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs/cifar10.yaml").write_text((repo / "configs/cifar10.yaml").read_text())
    (runs / "gpu_hours_estimate.csv").write_text((repo / "benchmarks/runs/gpu_hours_estimate.csv").read_text())
    pd.DataFrame(
        {
            "part": ["train_ddpm", "sample_guided", "knn", "precision", "search"],
            "metric": ["images_per_s", "seconds_per_image", "seconds", "seconds", "peak_memory"],
            "value": [1000.0, 0.36, 1800.0, 1800.0, 40.0],
            "unit": ["images/s", "s/image", "s", "s", "GiB"],
            "detail": [""] * 5,
            "date": "2026-12-04",
            "commit": "abc1234",
            "gpu": "NVIDIA H200",
        }
    ).to_csv(runs / "gpu-2026-12-04.csv", index=False)
    page = render_gpu_hours(runs)
    assert "**Measured** on NVIDIA H200" in page and "Extrapolated" not in page
    assert "| train_ddpm (CIFAR-10)             |      28.444 |" in page
    assert "| sample_guided (CIFAR-10)          |       5     |" in page
    assert "| k-NN + precision (ImageNet scale) |       1     |" in page
