"""How the density metrics grow with the reference size, and what that means at paper scale.

    python benchmarks/density_scale.py [--sizes 10000 20000 40000 80000] [--dim 2048] [--queries 5000] [--device cpu]

For each reference size N (random float32 features of `--dim` dimensions, memory-mapped from a
.npy file as the pipeline stores them), one process runs what the pipeline runs per feature
space: the reference's own 20 nearest neighbours (`reference_neighbours`), then for one set of
`--queries` samples the k-NN search of AvgkNN/LOF and the precision/recall ball tests
(`density_metrics`). It prints, per size, the seconds of each part and the process's peak
resident memory; then the fitted growth t = a·N^b of the self-search and of the set's metrics
(below b = 2 and 1 at these sizes, where fixed costs still weigh), and the extrapolation, with
the algorithm's exponents (every pair of references once: N²; one set: N) from the largest size, to CIFAR-10 (50,000
references) and ImageNet (1,281,167) on this machine and on a GPU at its GEMM rate: measured
here with `--device cuda`, else the nominal FP32 rate given by `--gpu-tflops` (H100 SXM: 67,
marked nominal). The growth is the measured one; the GPU line scales it by the ratio of GEMM
rates, an estimate the documentation labels as such.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER_SIZES = {"CIFAR-10": 50_000, "ImageNet": 1_281_167}


def one_size(n: int, dim: int, queries: int, device: str, folder: str) -> dict:
    """The pipeline's searches at one reference size, in this process (run as a child)."""
    from lowdensity.metrics.knn import improved_precision_recall, knn

    rng = np.random.default_rng(n)
    path = Path(folder) / f"refs_{n}.npy"
    written = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 4096):  # in chunks: the peak memory below is the searches', not the data's making
        written[start : start + 4096] = rng.normal(size=(min(4096, n - start), dim))
    written.flush()
    del written
    refs = np.load(path, mmap_mode="r")
    fake = rng.normal(0.1, 1.0, size=(queries, dim)).astype(np.float32)
    start = time.perf_counter()
    own_d, _ = knn(refs, refs, 20, exclude_self=True, device=device)
    self_search = time.perf_counter() - start
    start = time.perf_counter()
    knn(fake, refs, 20, device=device)
    improved_precision_recall(refs, fake, k=3, real_radii=own_d[:, 2], device=device)
    per_set = time.perf_counter() - start
    return {"n": n, "self_search_s": self_search, "per_set_s": per_set, "peak_rss_mb": peak_resident_mb()}


def peak_resident_mb() -> float:
    """This process's peak resident memory: VmHWM of /proc/self/status (getrusage's ru_maxrss can
    carry a parent's high-water mark across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_tflops(device: str) -> float:
    """Measured float32 GEMM rate of `device` (4096² × 4096, best of 3)."""
    import torch

    a = torch.randn(4096, 4096, device=device)
    best = float("inf")
    for _ in range(3):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ a
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best / 1e12


def fit(ns, ts) -> tuple[float, float]:
    """t = a · N^b by least squares in log–log."""
    b, log_a = np.polyfit(np.log(ns), np.log(ts), 1)
    return float(np.exp(log_a)), float(b)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000, 80_000])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpu-tflops", type=float, default=67.0, help="nominal FP32 rate used when no GPU is measured")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_size(args.child, args.dim, args.queries, args.device, args.folder)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:  # one process per size, so that the peak memory is that size's
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(n),
                    "--dim",
                    str(args.dim),
                    "--queries",
                    str(args.queries),
                    "--device",
                    args.device,
                    "--folder",
                    folder,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"N = {n:>9,}: reference self-search {r['self_search_s']:8.1f} s, one set of {args.queries} "
                f"{r['per_set_s']:7.1f} s, peak memory {r['peak_rss_mb']:8.0f} MB "
                f"(the features alone: {n * args.dim * 4 / 2**20:.0f} MB)",
                flush=True,
            )
    ns = np.array([r["n"] for r in rows], dtype=float)
    self_fit = fit(ns, [r["self_search_s"] for r in rows])
    set_fit = fit(ns, [r["per_set_s"] for r in rows])
    mem_fit = np.polyfit(ns, [r["peak_rss_mb"] for r in rows], 1)
    print(
        f"\ngrowth: self-search ∝ N^{self_fit[1]:.2f}, one set's metrics ∝ N^{set_fit[1]:.2f}, "
        f"peak memory ≈ {mem_fit[1]:.0f} MB + {mem_fit[0] * 1e6:.0f} MB per million references"
    )
    here = gemm_tflops(args.device)
    gpu = gemm_tflops("cuda") if args.device.startswith("cuda") else args.gpu_tflops
    label = "measured" if args.device.startswith("cuda") else "nominal"
    print(f"GEMM rate: {here:.3f} TFLOP/s on {args.device}; GPU {gpu:.1f} TFLOP/s ({label})")
    largest = rows[-1]
    for name, n in PAPER_SIZES.items():
        # the fitted exponent is flattened by fixed costs at small N; the algorithm's (every pair of
        # references once: N², one set against all references: N) from the largest size is the planning figure
        t_self = largest["self_search_s"] * (n / largest["n"]) ** 2
        t_set = largest["per_set_s"] * (n / largest["n"])
        fitted = (self_fit[0] * n ** self_fit[1], set_fit[0] * n ** set_fit[1])
        print(
            f"{name:>9} ({n:,} references): self-search {hours(t_self)}, one set {hours(t_set)} on {args.device} "
            f"(N² and N from the largest size; the fitted exponents give {hours(fitted[0])} and {hours(fitted[1])}); "
            f"on the GPU ≈ {hours(t_self * here / gpu)} and {hours(t_set * here / gpu)} ({label} rate); "
            f"peak memory ≈ {(mem_fit[1] + mem_fit[0] * n) / 1024:.1f} GB"
        )


if __name__ == "__main__":
    main()
