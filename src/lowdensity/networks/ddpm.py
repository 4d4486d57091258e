"""The diffusion model stage: build the U-Net from the config, train it, load it back."""

from __future__ import annotations

import torch

from lowdensity.core.diffusion import GaussianDiffusion, build_diffusion
from lowdensity.core.training import (
    local_part,
)
from lowdensity.data import to_model_range
from lowdensity.networks.unet import UNet, load_network


def unet_kwargs(model_cfg: dict, resolution: int, channels: int, num_classes: int, learn_sigma: bool) -> dict:
    return dict(
        image_size=resolution,
        in_channels=channels,
        model_channels=model_cfg["channels"],
        out_channels=channels * (2 if learn_sigma else 1),
        num_res_blocks=model_cfg["num_res_blocks"],
        attention_resolutions=tuple(model_cfg["attention_resolutions"]),
        channel_mult=tuple(model_cfg["channel_mult"]),
        dropout=model_cfg["dropout"],
        num_classes=num_classes if model_cfg["class_conditional"] else None,
        num_heads=model_cfg["num_heads"],
        scale_shift=model_cfg["scale_shift"],
    )


def training_diffusion(diffusion_cfg: dict) -> GaussianDiffusion:
    return build_diffusion(diffusion_cfg["num_steps"], diffusion_cfg["schedule"], diffusion_cfg["variance"])


def sampling_diffusion(diffusion_cfg: dict, steps) -> GaussianDiffusion:
    """The respaced chain for sampling: `steps` kept steps (an int, a section string or 'ddimN')."""
    return build_diffusion(
        diffusion_cfg["num_steps"], diffusion_cfg["schedule"], diffusion_cfg["variance"], respacing=steps
    )


def ddpm_losses(
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    device,
    random_flip: bool,
):
    """The per-step loss closure for `training.train`: a random batch, t ~ U{0..T−1}, ε ~ N(0, I)."""

    def compute(model, generator):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        flip = (
            torch.rand(batch_size, generator=generator) < 0.5
            if random_flip
            else torch.zeros(batch_size, dtype=torch.bool)
        )
        t = torch.randint(diffusion.num_timesteps, (batch_size,), generator=generator)
        noise = torch.randn((batch_size, *images.shape[1:]), generator=generator)
        idx, flip, t, noise = local_part(idx, flip, t, noise)  # this rank's share (all of it on one process)
        x0 = to_model_range(images[idx])
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        kwargs = {"y": labels[idx].to(device)} if labels is not None else {}
        terms = diffusion.training_losses(model, x0.to(device), t.to(device), kwargs, noise=noise.to(device))
        return {k: v.mean() for k, v in terms.items()}

    return compute


def load_ddpm(model_path: str, device: torch.device) -> tuple[UNet, dict]:
    """The trained U-Net (EMA weights, eval mode) and the file's metadata."""
    return load_network(model_path, UNet, device)
