import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


class SmoothEps(torch.nn.Module):
    """A fixed, non-trivial function of (x, t) standing in for a trained network."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, **kw):
        return torch.tanh(x * 0.7 + torch.sin(t.float() / 50).reshape(-1, 1, 1, 1))


def small_unet(**kw):
    """An 8×8 class-conditional U-Net of two levels, small enough to train in seconds."""
    from lowdensity.networks.unet import UNet

    args = dict(
        image_size=8,
        in_channels=1,
        model_channels=16,
        out_channels=1,
        num_res_blocks=1,
        attention_resolutions=(4,),
        channel_mult=(1, 2),
        num_classes=3,
    )
    return UNet(**{**args, **kw})


def pytest_collection_modifyitems(config, items):
    """Mark the tests that read the tiny DAG's run (`tiny_run`): `make slurm-test` runs only those
    against its SLURM run; the others do not depend on how the DAG was executed and ran in `make test`."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reads_tiny_run)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def snakemake_exe() -> str:
    exe = shutil.which("snakemake") or str(Path(os.sys.executable).with_name("snakemake"))
    assert Path(exe).exists(), "snakemake is not installed in this environment"
    return exe


@pytest.fixture(scope="session")
def trained(tmp_path_factory, repo):
    """A tiny DDPM and classifier trained on 8×8 Fashion-MNIST-like data, with Gaussians."""
    import numpy as np
    import torch

    from lowdensity.data import Split, save_split
    from lowdensity.guidance.classifier import load_encoder
    from lowdensity.io import atomic_torch_save
    from lowdensity.stages.ddpm import train_ddpm
    from lowdensity.stages.guidance import fit_gaussians_for, train_classifier

    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    n = 240
    labels = np.arange(n) % 3
    images = np.zeros((n, 1, 8, 8), dtype=np.uint8)
    for i, c in enumerate(labels):  # three shapes: horizontal bar, vertical bar, square, with jitter
        r, col = rng.integers(1, 4, 2)
        if c == 0:
            images[i, 0, r + 1 : r + 3, 1:7] = 200 + rng.integers(0, 55)
        elif c == 1:
            images[i, 0, 1:7, col + 1 : col + 3] = 200 + rng.integers(0, 55)
        else:
            images[i, 0, r : r + 4, col : col + 4] = 200 + rng.integers(0, 55)
    split = Split(images, labels.astype(np.int64), ("h", "v", "sq"))
    save_split(split, root / "train.npz")
    diffusion = {"num_steps": 100, "schedule": "linear", "variance": "fixed_small"}
    unet = {
        "channels": 16,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [4],
        "dropout": 0.0,
        "num_heads": 1,
        "scale_shift": True,
    }
    train = {
        "steps": 150,
        "batch_size": 32,
        "lr": 2e-3,
        "weight_decay": 0.0,
        "warmup_steps": 10,
        "ema_decay": 0.9,
        "grad_clip": 1.0,
        "random_flip": False,
        "checkpoint_every": 1000,
        "log_every": 50,
        "seed": 0,
    }
    train_ddpm(
        params={"ddpm": {"model": {**unet, "class_conditional": True}, "train": train}, "diffusion": diffusion},
        data=str(root / "train.npz"),
        model=str(root / "ddpm.pt"),
        loss_csv=str(root / "loss.csv"),
        checkpoint=str(root / "ddpm_ck.pt"),
        device="cpu",
    )
    clf = {"model": {**unet, "embedding_dim": 8}, "train": {**train, "steps": 100, "seed": 1}, "eval_timesteps": [0]}
    train_classifier(
        params={"classifier": clf, "diffusion": diffusion},
        data=str(root / "train.npz"),
        val=str(root / "train.npz"),
        model=str(root / "clf.pt"),
        accuracy=str(root / "acc.csv"),
        checkpoint=str(root / "clf_ck.pt"),
        device="cpu",
    )
    model, _ = load_encoder(str(root / "clf.pt"), torch.device("cpu"))
    gaussians, _ = fit_gaussians_for(
        model, split, {"noise_buckets": 2, "shrinkage": "ledoit_wolf", "seed": 0, "max_per_class": None}, diffusion
    )
    atomic_torch_save(gaussians.state_dict(), root / "gaussians.pt")
    return root
