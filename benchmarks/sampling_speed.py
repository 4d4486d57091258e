"""Seconds per image of baseline and α/β-guided sampling at the same batch size and steps.

The guided step adds one forward + backward through the classifier and one through the
discriminator to the U-Net's forward; the printed ratio shows how close the guided
sampler is to that floor. The networks have the configured architectures (weights do
not change the cost): random weights unless --ddpm/--classifier/... point at trained
files. Also prints DDPM training steps per second. With several `--precision` values (and
`--channels-last`), every line is repeated for each setting (bf16: autocast, as the pipeline's
`precision: bf16`), so their ratios compare on one device in one run.

    python benchmarks/sampling_speed.py [--config config.yaml] [--device cuda] [--batch 250] [--steps 100]
                                        [--precision fp32 bf16] [--channels-last]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lowdensity.config import load_config
from lowdensity.core.noise import NoiseSource
from lowdensity.core.training import compute_precision, memory_format
from lowdensity.guidance.classifier import encoder_kwargs
from lowdensity.guidance.gaussians import ClassGaussians
from lowdensity.guidance.guided import Guide, GuidedCell, guidance_gradient, make_cond_fn
from lowdensity.networks.ddpm import ddpm_losses, sampling_diffusion, training_diffusion, unet_kwargs
from lowdensity.networks.unet import EncoderUNet, UNet
from lowdensity.runtime import select_device


def _run_in(context, fn):
    with context:
        return fn()


def timed(fn, device, repeats=1):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def random_guide(model_cfg, resolution, channels, classes, device):
    model = (
        EncoderUNet(**encoder_kwargs(model_cfg, resolution, channels, classes)).to(device).eval().requires_grad_(False)
    )
    k = model_cfg["embedding_dim"]
    rng = np.random.default_rng(0)
    gaussians, _ = ClassGaussians.fit(
        rng.normal(size=(classes * 4 * k, k)), np.arange(classes * 4 * k) % classes, classes, "ledoit_wolf"
    )
    return Guide(model, gaussians)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=["config.yaml"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", default=None, help="respaced sampling steps (default: sampling.steps)")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true", help="also each precision with channels-last weights")
    args = parser.parse_args()
    for precision in args.precision:
        for channels_last in [False, True] if args.channels_last else [False]:
            print(f"\n== precision {precision}, channels_last {channels_last}")
            run(args, precision, channels_last)


def run(args, precision: str, channels_last: bool):
    cfg = load_config(*args.config)
    device = select_device(args.device)
    res = cfg["data"]["resolution"]
    channels = 3 if cfg["data"]["dataset"] != "fashion_mnist" else 1
    classes = 10
    batch = args.batch or cfg["sampling"]["batch_size"]
    steps = args.steps or cfg["sampling"]["steps"]
    torch.manual_seed(0)
    unet = UNet(
        **unet_kwargs(cfg["ddpm"]["model"], res, channels, classes, cfg["diffusion"]["variance"] == "learned_range")
    ).to(device)
    diffusion = sampling_diffusion(cfg["diffusion"], steps)
    labels = torch.arange(batch, device=device) % classes
    shape = (batch, channels, res, res)
    classifier = random_guide(cfg["classifier"]["model"], res, channels, classes, device)
    discriminator = random_guide(cfg["discriminator"]["model"], res, channels, 2, device)
    for net in (unet, classifier.model, discriminator.model):
        memory_format(net, channels_last)
    unet.eval().requires_grad_(False)
    within = lambda fn: lambda: _run_in(compute_precision(device, precision), fn)  # noqa: E731

    def baseline():
        with torch.no_grad():
            diffusion.sample_loop(unet, shape, NoiseSource(range(batch)), model_kwargs={"y": labels}, device=device)

    def guided():
        g = cfg["guidance"]
        cell = GuidedCell(alpha=g["alpha"], beta=g["beta"], loss="hardness", tau=g["tau"])
        cond = make_cond_fn(labels, cell, classifier, discriminator)
        diffusion.sample_loop(
            unet, shape, NoiseSource(range(batch)), model_kwargs={"y": labels}, cond_fn=cond, device=device
        )

    x = torch.randn(shape, device=device)
    t = torch.full((batch,), 500, device=device)

    def unet_forward():
        with torch.no_grad():
            unet(x, t, labels)

    def guide_forward_backward():
        guidance_gradient(classifier, x, t, lambda e, tt: classifier.gaussians.hardness(e, tt)[:, 0])
        guidance_gradient(discriminator, x, t, lambda e, tt: discriminator.gaussians.hardness(e, tt)[:, 0])

    base_s = timed(within(baseline), device) / batch
    guided_s = timed(within(guided), device) / batch
    floor = (timed(within(unet_forward), device, 5) + timed(within(guide_forward_backward), device, 5)) / timed(
        within(unet_forward), device, 5
    )
    print(
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
        f"batch {batch}, {steps} steps, {res}x{res}"
    )
    print(
        f"baseline: {base_s * 1e3:.2f} ms/image   guided (alpha={cfg['guidance']['alpha']}, "
        f"beta={cfg['guidance']['beta']}): {guided_s * 1e3:.2f} ms/image"
    )
    print(
        f"guided/baseline ratio: {guided_s / base_s:.2f}   floor "
        f"(U-Net fwd + 2 x guide fwd/bwd) / U-Net fwd: {floor:.2f}"
    )

    unet.train().requires_grad_(True)
    images = torch.randint(0, 256, (1024, channels, res, res), dtype=torch.uint8)
    compute = ddpm_losses(
        training_diffusion(cfg["diffusion"]),
        images,
        torch.arange(1024) % classes,
        cfg["ddpm"]["train"]["batch_size"],
        device,
        False,
    )
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def train_step():
        with compute_precision(device, precision):
            loss = compute(unet, gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_s = timed(train_step, device, args.train_steps)
    print(
        f"DDPM training: {1 / step_s:.1f} steps/s at batch {cfg['ddpm']['train']['batch_size']} "
        f"({cfg['ddpm']['train']['batch_size'] / step_s:.0f} images/s)"
    )


if __name__ == "__main__":
    main()
