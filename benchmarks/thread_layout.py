"""How the default's stages use two cores: one job with 2 threads, or two jobs with 1 thread each?

For each stage's inner step (the U-Net's sampling step at the sampling batch, a DDPM training
step, an encoder training step, a GAN training step) this prints the throughput of
  - one process with 1 torch thread (the reference),
  - one process with N threads (a rule with `threads: N`),
  - N processes with 1 thread each, side by side (N rules with `threads: 1`),
as steps per second and as ratios to the reference, measured in one run on this machine.

    python benchmarks/thread_layout.py [--config config.yaml] [--threads 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch


def build(stage: str, cfg: dict):
    """The stage's step as a closure (random weights: the cost does not depend on them)."""
    from lowdensity.guidance.classifier import encoder_kwargs, noisy_ce_losses
    from lowdensity.networks.ddpm import ddpm_losses, sampling_diffusion, training_diffusion, unet_kwargs
    from lowdensity.networks.gan import build_gan, hinge_discriminator_loss, hinge_generator_loss
    from lowdensity.networks.unet import EncoderUNet, UNet

    res, classes = cfg["data"]["resolution"], 10
    images = torch.randint(0, 256, (2048, 1, res, res), dtype=torch.uint8)
    labels = torch.arange(2048) % classes
    generator = torch.Generator().manual_seed(0)
    if stage == "sample":
        model = UNet(**unet_kwargs(cfg["ddpm"]["model"], res, 1, classes, False)).eval()
        diffusion = sampling_diffusion(cfg["diffusion"], cfg["sampling"]["steps"])
        b = cfg["sampling"]["batch_size"]
        x, y, t = torch.randn(b, 1, res, res), torch.arange(b) % classes, torch.full((b,), 50)
        return lambda: diffusion.p_sample(model, x, t, torch.randn_like(x), {"y": y})
    if stage in ("train_ddpm", "train_encoder"):
        if stage == "train_ddpm":
            model = UNet(**unet_kwargs(cfg["ddpm"]["model"], res, 1, classes, False))
            compute = ddpm_losses(
                training_diffusion(cfg["diffusion"]), images, labels, cfg["ddpm"]["train"]["batch_size"], "cpu", False
            )
        else:
            model = EncoderUNet(**encoder_kwargs(cfg["classifier"]["model"], res, 1, classes))
            compute = noisy_ce_losses(
                training_diffusion(cfg["diffusion"]), images, labels, cfg["classifier"]["train"]["batch_size"], "cpu"
            )
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = compute(model, generator)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step
    if stage == "train_gan":
        arch = {"model": cfg["gan"]["model"], "image_size": res, "channels": 1, "num_classes": classes}
        g, d = build_gan(arch)
        opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        bs, d_steps = cfg["gan"]["train"]["batch_size"], cfg["gan"]["train"]["d_steps"]
        real = images[:bs].float() / 127.5 - 1

        def step():  # as gan.train_gan: d_steps joint D steps, one G step with D frozen
            for _ in range(d_steps):
                y = torch.randint(classes, (bs,), generator=generator)
                with torch.no_grad():
                    fake = g(torch.randn(bs, g.z_dim, generator=generator), y)
                logits = d(torch.cat([real, fake]), torch.cat([labels[:bs], y]))
                loss = hinge_discriminator_loss(logits[:bs], logits[bs:])
                opt_d.zero_grad()
                loss.backward()
                opt_d.step()
            d.requires_grad_(False)
            y = torch.randint(classes, (bs,), generator=generator)
            loss = hinge_generator_loss(d(g(torch.randn(bs, g.z_dim, generator=generator), y), y))
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            d.requires_grad_(True)

        return step
    raise ValueError(stage)


def steps_per_second(stage: str, cfg: dict, threads: int, seconds: float, start_at: float | None = None) -> float:
    torch.set_num_threads(threads)
    step = build(stage, cfg)
    step()  # warm-up
    if start_at is not None:  # side-by-side processes start timing together
        time.sleep(max(0.0, start_at - time.time()))
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - begin)


def _worker(args):
    return steps_per_second(*args)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=["config.yaml"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stages", nargs="+", default=["sample", "train_ddpm", "train_encoder", "train_gan"])
    args = parser.parse_args()
    from lowdensity.config import load_config

    cfg = load_config(*args.config)
    n = args.threads
    print(f"| stage | 1 thread (steps/s) | 1 job × {n} threads | {n} jobs × 1 thread, side by side (total) |")
    print("|---|---:|---:|---:|")
    ctx = mp.get_context("spawn")
    for stage in args.stages:
        alone = steps_per_second(stage, cfg, 1, args.seconds)
        threaded = steps_per_second(stage, cfg, n, args.seconds)
        with ctx.Pool(n) as pool:
            start_at = time.time() + 15.0  # after every worker has built its step
            side = sum(pool.map(_worker, [(stage, cfg, 1, args.seconds, start_at)] * n))
        print(
            f"| {stage} | {alone:.2f} | {threaded:.2f} (×{threaded / alone:.2f}) | {side:.2f} (×{side / alone:.2f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
