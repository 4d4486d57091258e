"""Per-op time of the default's four hot operations under each kernel option, as a ratio to fp32
eager measured in the same run, on whatever device the machine has.

    python benchmarks/kernel_options.py [--config config.yaml ...] [--threads 1] [--repeats 5]
                                        [--profile]

Operations: one DDPM training step (the configured U-Net and batch: forward, backward, AdamW), one
guided sampling step (U-Net forward, then a forward and backward through the classifier and the
discriminator, at `sampling.batch_size`), one feature batch (EfficientNet-Lite0 on 256 images at
its input size) and one GAN training step (`gan.train.d_steps` discriminator steps on real and
generated images in one forward, then a generator step, with Adam). Options: fp32 eager (the
reference), bf16 autocast, channels-last, both, and `torch.compile` (fp32; its first call — the
compilation — is printed apart and not in the per-op time), and for the two training steps bf16
with a fused optimiser step (one kernel for all parameters). Where the CPU has no bfloat16
instructions (AVX-512 BF16 or AMX) autocast emulates bf16 and the rows say so. Then the EMA
update's share of a bf16 training step, and with --profile the top operators of one fp32 eager
call of each operation (torch.profiler, by self CPU time).
Threads default to one, as each job of the default run has.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

# Compile from scratch, as a fresh clone would: inductor's on-disk caches otherwise turn the
# measured compile time into a cache lookup after the first run.
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")
import torch  # noqa: E402

from lowdensity.config import load_config
from lowdensity.core.training import compute_precision, ema_update
from lowdensity.guidance.guided import GuidedCell, make_cond_fn
from lowdensity.metrics.features import load_efficientnet_lite0
from lowdensity.networks.ddpm import ddpm_losses, training_diffusion, unet_kwargs
from lowdensity.networks.gan import build_gan, hinge_discriminator_loss, hinge_generator_loss
from lowdensity.networks.unet import UNet
from lowdensity.runtime import native_bf16, select_device

sys.path.insert(0, str(Path(__file__).parent))
from sampling_speed import random_guide  # noqa: E402

OPTIONS = {
    "fp32 eager": {"precision": "fp32", "channels_last": False, "compile": False},
    "bf16 autocast": {"precision": "bf16", "channels_last": False, "compile": False},
    "channels-last": {"precision": "fp32", "channels_last": True, "compile": False},
    "bf16 + channels-last": {"precision": "bf16", "channels_last": True, "compile": False},
    "torch.compile": {"precision": "fp32", "channels_last": False, "compile": True},
    "bf16 + fused optimiser": {"precision": "bf16", "channels_last": False, "compile": False, "fused": True},
}
TRAINING_STEPS = ("training step", "GAN training step")  # the operations with an optimiser step


def seconds(fn, device, repeats):
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def operations(cfg: dict, device: torch.device, option: dict):
    """The four operations as closures, built under `option` (fresh networks for each)."""
    res, channels, classes = cfg["data"]["resolution"], 1, 10
    learned = cfg["diffusion"]["variance"] == "learned_range"
    torch.manual_seed(0)
    layout = torch.channels_last if option["channels_last"] else torch.contiguous_format
    unet = UNet(**unet_kwargs(cfg["ddpm"]["model"], res, channels, classes, learned)).to(device, memory_format=layout)
    batch = cfg["ddpm"]["train"]["batch_size"]
    images = torch.randint(0, 256, (4 * batch, channels, res, res), dtype=torch.uint8)
    losses = ddpm_losses(
        training_diffusion(cfg["diffusion"]), images, torch.arange(4 * batch) % classes, batch, device, True
    )
    net = torch.compile(unet) if option["compile"] else unet
    fused = option.get("fused", False)  # one multi-tensor kernel for all parameters (torch's fused=True)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, fused=fused)
    generator = torch.Generator().manual_seed(0)
    context = lambda: compute_precision(device, option["precision"])  # noqa: E731

    def train_step():
        with context():
            loss = losses(net, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    sample_batch = cfg["sampling"]["batch_size"]
    classifier = random_guide(cfg["classifier"]["model"], res, channels, classes, device)
    discriminator = random_guide(cfg["discriminator"]["model"], res, channels, 2, device)
    for guide in (classifier, discriminator):
        guide.model.to(memory_format=layout)
        if option["compile"]:
            guide.model = torch.compile(guide.model)
    frozen = UNet(**unet_kwargs(cfg["ddpm"]["model"], res, channels, classes, learned)).to(device, memory_format=layout)
    frozen = frozen.eval().requires_grad_(False)
    frozen_net = torch.compile(frozen) if option["compile"] else frozen
    labels = torch.arange(sample_batch, device=device) % classes
    x = torch.randn(sample_batch, channels, res, res, device=device)
    t = torch.full((sample_batch,), 10, device=device)  # low noise: where both guides act
    g = cfg["guidance"]
    cond = make_cond_fn(
        labels, GuidedCell(alpha=g["alpha"], beta=g["beta"], loss="hardness", tau=g["tau"]), classifier, discriminator
    )

    def guided_step():
        with context():
            with torch.no_grad():
                frozen_net(x, t, labels)
            cond(x, t, SimpleNamespace(log_variance=torch.zeros_like(x)))

    extractor = load_efficientnet_lite0(64, device, channels_last=option["channels_last"])
    if option["compile"]:
        extractor.model = torch.compile(extractor.model)
    feature_images = np.random.default_rng(0).integers(0, 256, (256, 1, res, res), dtype=np.uint8)

    def feature_batch():
        with context():
            extractor(feature_images, batch_size=256)

    gan_cfg = cfg["gan"]
    generator_net, discriminator_net = (
        net.to(device, memory_format=layout)
        for net in build_gan(
            {"model": gan_cfg["model"], "image_size": res, "channels": channels, "num_classes": classes}
        )
    )
    gan_nets = [torch.compile(n) if option["compile"] else n for n in (generator_net, discriminator_net)]
    opt_g, opt_d = (
        torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.0, 0.999), fused=fused)
        for n in (generator_net, discriminator_net)
    )
    gan_batch = gan_cfg["train"]["batch_size"]
    real = torch.rand(gan_batch, channels, res, res, device=device) * 2 - 1
    gan_labels = torch.arange(gan_batch, device=device) % classes

    def gan_step():
        generate, discriminate = gan_nets
        for _ in range(gan_cfg["train"]["d_steps"]):
            with context():
                with torch.no_grad():
                    fake = generate(torch.randn(gan_batch, generator_net.z_dim, device=device), gan_labels)
                logits = discriminate(torch.cat([real, fake]), torch.cat([gan_labels, gan_labels])).float()
            opt_d.zero_grad(set_to_none=True)
            hinge_discriminator_loss(logits[:gan_batch], logits[gan_batch:]).backward()
            opt_d.step()
        with context():
            z = torch.randn(gan_batch, generator_net.z_dim, device=device)
            logits = discriminate(generate(z, gan_labels), gan_labels).float()
        opt_g.zero_grad(set_to_none=True)
        hinge_generator_loss(logits).backward()
        opt_g.step()

    return {
        "training step": train_step,
        "guided sampling step": guided_step,
        "feature batch": feature_batch,
        "GAN training step": gan_step,
    }


def ema_update_seconds(cfg: dict, device: torch.device, repeats: int) -> float:
    """The training loop's EMA update of the configured U-Net (one multiply-add per parameter)."""
    res, learned = cfg["data"]["resolution"], cfg["diffusion"]["variance"] == "learned_range"
    unet = UNet(**unet_kwargs(cfg["ddpm"]["model"], res, 1, 10, learned)).to(device)
    ema = copy.deepcopy(unet).requires_grad_(False)
    return seconds(lambda: ema_update(ema, unet, cfg["ddpm"]["train"]["ema_decay"]), device, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=["config.yaml"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(*args.config, check_files=False)
    device = select_device(args.device)
    bf16_note = "" if native_bf16(device) else " (no bf16 instructions here: emulated)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    print(f"device {device} ({name}), {args.threads} thread(s), median of {args.repeats}")
    results = {}
    for option_name, option in OPTIONS.items():
        ops = operations(cfg, device, option)
        for op_name, fn in ops.items():
            if option.get("fused") and op_name not in TRAINING_STEPS:
                continue
            start = time.perf_counter()
            fn()
            first = time.perf_counter() - start
            results[(op_name, option_name)] = (seconds(fn, device, args.repeats), first)
    for op_name in ("training step", "guided sampling step", "feature batch", "GAN training step"):
        reference = results[(op_name, "fp32 eager")][0]
        print(f"\n{op_name}")
        for option_name in OPTIONS:
            if (op_name, option_name) not in results:
                continue
            value, first = results[(op_name, option_name)]
            extra = f"   first call (compilation) {first:.1f} s" if OPTIONS[option_name]["compile"] else ""
            note = bf16_note if "bf16" in option_name else ""
            print(
                f"  {option_name:<22} {value * 1e3:9.1f} ms   speed x{reference / value:5.2f} of fp32 eager"
                f"{note}{extra}"
            )
    ema_ms = ema_update_seconds(cfg, device, args.repeats) * 1e3
    bf16_step_ms = results[("training step", "bf16 autocast")][0] * 1e3
    print(
        f"\nPython-level work per DDPM training step: the EMA update takes {ema_ms:.1f} ms "
        f"({ema_ms / bf16_step_ms:.1%} of the bf16 step)"
    )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for op_name, fn in operations(cfg, device, OPTIONS["fp32 eager"]).items():
            fn()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"\ntop operators of one {op_name} (fp32 eager)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
