"""The DDPM stage: train the diffusion model (resumable, data-parallel under torchrun)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lowdensity.core.training import (
    array_digest,
    fingerprint,
    is_main_process,
    join_world,
    train,
    trajectory_config,
)
from lowdensity.data import load_split
from lowdensity.io import atomic_to_csv, atomic_torch_save
from lowdensity.networks.ddpm import ddpm_losses, training_diffusion, unet_kwargs
from lowdensity.networks.unet import UNet, count_parameters
from lowdensity.runtime import select_device, with_precision


def train_ddpm(
    *,
    params: dict,
    data: str,
    model: str,
    loss_csv: str,
    checkpoint: str,
    snapshots: str = "results/ddpm/snapshots",
    device: str = "auto",
) -> None:
    """Train the DDPM of params['ddpm'] with the chain of params['diffusion'] on the prepared train split.

    Writes the EMA weights with their architecture to `model` and the loss log to `loss_csv`.

    Args:
        params: {"ddpm": ..., "diffusion": ...} of the config.
        data: the prepared training split.
        model: the trained DDPM's weights (EMA).
        loss_csv: the training loss per logged step.
        checkpoint: the resumable checkpoint (resumed from when it exists).
        snapshots: the folder of the EMA snapshots at ddpm.train.snapshots (step_N.pt, each as a
            run of N steps writes its model).
        device: where to train (auto: CUDA when present).
    """
    ddpm_cfg, diffusion_cfg = params["ddpm"], params["diffusion"]
    split = load_split(data)
    dev = join_world(select_device(device))  # under torchrun: this rank's device in the data-parallel group
    train_cfg = with_precision(ddpm_cfg["train"], dev)
    learn_sigma = diffusion_cfg["variance"] == "learned_range"
    arch = unet_kwargs(ddpm_cfg["model"], split.resolution, split.channels, len(split.class_names), learn_sigma)
    torch.manual_seed(train_cfg["seed"])
    network = UNet(**arch)
    diffusion = training_diffusion(diffusion_cfg)
    labels = torch.from_numpy(split.labels) if arch["num_classes"] else None
    compute = ddpm_losses(
        diffusion,
        torch.from_numpy(split.images),
        labels,
        train_cfg["batch_size"],
        dev,
        train_cfg["random_flip"],
    )
    run_id = fingerprint(
        trajectory_config(train_cfg),
        ddpm_cfg["model"],
        diffusion_cfg,
        array_digest(split.images, split.labels),
    )

    def weights_file(state_dict: dict, steps: int) -> dict:
        """What a run of `steps` steps writes: the EMA weights with what sampling needs to know."""
        return {
            "state_dict": {k: v.cpu() for k, v in state_dict.items()},
            "arch": arch,
            "diffusion": diffusion_cfg,
            "steps": steps,
            "parameters": count_parameters(network),
            "class_names": list(split.class_names),
            "precision": train_cfg["precision"],
        }

    def write_snapshot(step: int, state_dict: dict) -> None:
        atomic_torch_save(weights_file(state_dict, step), Path(snapshots) / f"step_{step}.pt")

    ema, history = train(
        network, compute, train_cfg, checkpoint, run_id, dev, desc="train_ddpm", on_snapshot=write_snapshot
    )
    if not is_main_process():
        return
    atomic_torch_save(weights_file(ema.state_dict(), train_cfg["steps"]), model)
    atomic_to_csv(pd.DataFrame(history), loss_csv)
