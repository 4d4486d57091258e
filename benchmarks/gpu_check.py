"""The paper-scale costs measured on one GPU in a few minutes (`make gpu-check`).

    python benchmarks/gpu_check.py [--out benchmarks/runs/gpu-<date>.csv] [--smoke]

On a machine with CUDA (in about 5 minutes on one recent GPU; each part stops at a time bound):
1. trains the paper's CIFAR-10 U-Net (configs/cifar10.yaml: 35.7M parameters, 32×32, batch 128)
   in bf16 autocast for up to `--train-steps` steps and reports images per second;
2. samples a batch through the α/β-guided sampler (the configuration's classifier and
   discriminator, random weights: the cost does not depend on them) for a few respaced steps and
   reports seconds per image, extrapolated linearly to the configuration's 250 steps;
3. runs the evaluation's exact k-NN (k = 5) and improved precision (k = 3) of 50,000 synthetic
   samples against 1,281,167 synthetic references of 2,048 dimensions (ImageNet's training set
   in ResNet-50's space), with `knn_backend: torch` on the GPU, and reports the time and the peak
   GPU memory.
Writes every number to a tidy CSV (date, commit, gpu, part, metric, value, unit, detail), from
which `make docs` computes the GPU-hours page. Without CUDA it exits at once saying so.
`--smoke` runs the same code at toy sizes on any device (the tests' check of the script).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lowdensity.config import load_config
from lowdensity.core.noise import NoiseSource
from lowdensity.core.training import compute_precision
from lowdensity.docs.provenance import git_commit
from lowdensity.guidance.guided import GuidedCell, make_cond_fn
from lowdensity.io import atomic_to_csv
from lowdensity.metrics.knn import improved_precision_recall, knn
from lowdensity.networks.ddpm import ddpm_losses, sampling_diffusion, training_diffusion, unet_kwargs
from lowdensity.networks.unet import UNet

sys.path.insert(0, str(Path(__file__).parent))
from sampling_speed import random_guide  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FULL = {"references": 1_281_167, "samples": 50_000, "dim": 2048, "guided_batch": 256, "sample_steps": 10}
SMOKE = {"references": 3_000, "samples": 500, "dim": 32, "guided_batch": 4, "sample_steps": 2}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(cfg: dict, device: torch.device, steps: int, seconds: float) -> dict:
    """Images per second of the configuration's DDPM training step in bf16 (after 5 warm-up steps)."""
    learned = cfg["diffusion"]["variance"] == "learned_range"
    unet = UNet(**unet_kwargs(cfg["ddpm"]["model"], 32, 3, 10, learned)).to(device).train()
    batch = cfg["ddpm"]["train"]["batch_size"]
    images = torch.randint(0, 256, (4 * batch, 3, 32, 32), dtype=torch.uint8)
    compute = ddpm_losses(
        training_diffusion(cfg["diffusion"]), images, torch.arange(4 * batch) % 10, batch, device, True
    )
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)

    def step():
        with compute_precision(device, "bf16"):
            loss = compute(unet, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    synchronize(device)
    start, done = time.perf_counter(), 0
    while done < steps and time.perf_counter() - start < seconds:
        step()
        done += 1
    synchronize(device)
    elapsed = time.perf_counter() - start
    parameters = sum(p.numel() for p in unet.parameters())
    return {"parameters": parameters, "steps": done, "batch": batch, "images_per_s": done * batch / elapsed}


def guided_seconds_per_image(cfg: dict, device: torch.device, batch: int, steps: int) -> float:
    """Seconds per image of the α/β-guided sampler over `steps` respaced steps, scaled to the
    configuration's `sampling.steps` (every step costs the same: one U-Net forward, one forward
    and backward through each guide)."""
    learned = cfg["diffusion"]["variance"] == "learned_range"
    unet = UNet(**unet_kwargs(cfg["ddpm"]["model"], 32, 3, 10, learned)).to(device).eval().requires_grad_(False)
    classifier = random_guide(cfg["classifier"]["model"], 32, 3, 10, device)
    discriminator = random_guide(cfg["discriminator"]["model"], 32, 3, 2, device)
    labels = torch.arange(batch, device=device) % 10
    cell = GuidedCell(alpha=cfg["guidance"]["alpha"], beta=cfg["guidance"]["beta"], loss="hardness", tau=1.0)
    diffusion = sampling_diffusion(cfg["diffusion"], steps)

    def sample():
        with compute_precision(device, "bf16"):
            diffusion.sample_loop(
                unet,
                (batch, 3, 32, 32),
                NoiseSource(range(batch)),
                model_kwargs={"y": labels},
                cond_fn=make_cond_fn(labels, cell, classifier, discriminator),
                device=device,
            )

    sample()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    sample()
    synchronize(device)
    return (time.perf_counter() - start) / batch * (int(cfg["sampling"]["steps"]) / steps)


def search_costs(sizes: dict, device: torch.device) -> dict:
    """Seconds and peak device memory of the exact k-NN and improved precision at `sizes`."""
    rng = np.random.default_rng(0)
    references = rng.standard_normal((sizes["references"], sizes["dim"]), dtype=np.float32)
    samples = rng.standard_normal((sizes["samples"], sizes["dim"]), dtype=np.float32)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    knn(samples, references, 5, device=device)
    synchronize(device)
    knn_s = time.perf_counter() - start
    start = time.perf_counter()
    improved_precision_recall(references, samples, k=3, device=device)
    synchronize(device)
    precision_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"knn_s": knn_s, "precision_s": precision_s, "peak_gib": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="default: benchmarks/runs/gpu-<date>.csv")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--train-seconds", type=float, default=90.0, help="stop training after this long")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on any device (checks the script)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.smoke:
        print("gpu-check: no CUDA device here; nothing measured (run it on a GPU node)")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)"
    sizes = SMOKE if args.smoke else FULL
    cfg = load_config(REPO / "config.yaml", REPO / "configs/cifar10.yaml", check_files=False)  # no weights read
    if args.smoke:  # the same code on a small network
        small = {"channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [16]}
        for section in ("ddpm", "classifier", "discriminator"):
            cfg[section]["model"] = {**cfg[section]["model"], **small}
        cfg["ddpm"]["train"]["batch_size"] = 4
    date = datetime.date.today().isoformat()
    out = Path(args.out or REPO / f"benchmarks/runs/gpu-{date}.csv")
    rows = []

    def record(part, metric, value, unit, detail):
        rows.append({"part": part, "metric": metric, "value": value, "unit": unit, "detail": detail})
        print(f"{part:>16} {metric:<22} {value:12.4g} {unit:<10} {detail}", flush=True)

    train = train_rate(cfg, device, 2 if args.smoke else args.train_steps, args.train_seconds)
    detail = (
        f"{train['parameters'] / 1e6:.1f}M-parameter U-Net, 32x32, batch {train['batch']}, bf16, {train['steps']} steps"
    )
    record("train_ddpm", "images_per_s", train["images_per_s"], "images/s", detail)
    seconds = guided_seconds_per_image(cfg, device, sizes["guided_batch"], sizes["sample_steps"])
    detail = f"batch {sizes['guided_batch']}, {sizes['sample_steps']} steps timed, scaled to {cfg['sampling']['steps']}"
    record("sample_guided", "seconds_per_image", seconds, "s/image", detail)
    search = search_costs(sizes, device)
    detail = f"{sizes['samples']:,} x {sizes['references']:,} x {sizes['dim']}"
    record("knn", "seconds", search["knn_s"], "s", f"exact k = 5, {detail}")
    record("precision", "seconds", search["precision_s"], "s", f"improved precision and recall k = 3, {detail}")
    record("search", "peak_memory", search["peak_gib"], "GiB", "peak GPU memory of the two searches")
    commit = git_commit(REPO)
    atomic_to_csv(pd.DataFrame(rows).assign(date=date, commit=commit, gpu=gpu), str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
