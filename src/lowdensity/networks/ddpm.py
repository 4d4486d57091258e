"""The diffusion model stage: build the U-Net from the config, train it, load it back."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from .data import load_split, to_model_range
from .diffusion import GaussianDiffusion, build_diffusion
from .io import atomic_to_csv, atomic_torch_save
from .training import array_digest, fingerprint, is_main_process, join_world, local_part, train, trajectory_config
from .unet import UNet, count_parameters, load_network


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
    return build_diffusion(diffusion_cfg["num_steps"], diffusion_cfg["schedule"], diffusion_cfg["variance"], respacing=steps)


def select_device(name: str = "auto") -> torch.device:
    """The device a stage runs on ('auto': CUDA when present). Logs it with torch's CPU thread
    count, which follows the rule's `threads` (Snakemake exports OMP_NUM_THREADS to each job)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    logging.getLogger("lowdensity").info("device %s, torch threads %d", device, torch.get_num_threads())
    return device


def ddpm_losses(diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int, device, random_flip: bool):
    """The per-step loss closure for `training.train`: a random batch, t ~ U{0..T−1}, ε ~ N(0, I)."""

    def compute(model, generator):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5 if random_flip else torch.zeros(batch_size, dtype=torch.bool)
        t = torch.randint(diffusion.num_timesteps, (batch_size,), generator=generator)
        noise = torch.randn((batch_size, *images.shape[1:]), generator=generator)
        idx, flip, t, noise = local_part(idx, flip, t, noise)  # this rank's share (all of it on one process)
        x0 = to_model_range(images[idx])
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        kwargs = {"y": labels[idx].to(device)} if labels is not None else {}
        terms = diffusion.training_losses(model, x0.to(device), t.to(device), kwargs, noise=noise.to(device))
        return {k: v.mean() for k, v in terms.items()}

    return compute


def train_ddpm(params: dict, data_path: str, model_path: str, loss_csv: str, checkpoint_path: str, device: str = "auto") -> None:
    """Train the DDPM of params['ddpm'] with the chain of params['diffusion'] on the prepared train split.

    Writes the EMA weights with their architecture to `model_path` and the loss log to `loss_csv`.
    """
    ddpm_cfg, diffusion_cfg = params["ddpm"], params["diffusion"]
    split = load_split(data_path)
    dev = join_world(select_device(device))  # under torchrun: this rank's device in the data-parallel group
    learn_sigma = diffusion_cfg["variance"] == "learned_range"
    arch = unet_kwargs(ddpm_cfg["model"], split.resolution, split.channels, len(split.class_names), learn_sigma)
    torch.manual_seed(ddpm_cfg["train"]["seed"])
    model = UNet(**arch)
    diffusion = training_diffusion(diffusion_cfg)
    labels = torch.from_numpy(split.labels) if arch["num_classes"] else None
    compute = ddpm_losses(diffusion, torch.from_numpy(split.images), labels, ddpm_cfg["train"]["batch_size"], dev, ddpm_cfg["train"]["random_flip"])
    run_id = fingerprint(
        trajectory_config(ddpm_cfg["train"]),
        ddpm_cfg["model"], diffusion_cfg, array_digest(split.images, split.labels),
    )
    ema, history = train(model, compute, ddpm_cfg["train"], checkpoint_path, run_id, dev, desc="train_ddpm")
    if not is_main_process():
        return
    atomic_torch_save(
        {"state_dict": {k: v.cpu() for k, v in ema.state_dict().items()}, "arch": arch, "diffusion": diffusion_cfg,
         "steps": ddpm_cfg["train"]["steps"], "parameters": count_parameters(ema), "class_names": list(split.class_names)},
        model_path,
    )
    atomic_to_csv(pd.DataFrame(history), loss_csv)


def load_ddpm(model_path: str, device: torch.device) -> tuple[UNet, dict]:
    """The trained U-Net (EMA weights, eval mode) and the file's metadata."""
    return load_network(model_path, UNet, device)
