"""The time-conditioned classifier g∘f and the real-vs-synthetic discriminator (paper Section 3.2).

Both are the U-Net's encoder with a pooled embedding f(x, t) ∈ R^k and a linear head g,
trained with cross-entropy on x_t ~ q(x_t | x_0) at timesteps t drawn uniformly from
the diffusion chain (as ADM's noisy classifier), so that they can guide every step of
the reverse process. The discriminator has two classes: 0 = synthetic (baseline
samples), 1 = real (training images), as in paper Eq. 6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .data import Split, load_split, stratified_subset, to_model_range
from .ddpm import select_device, training_diffusion
from .diffusion import GaussianDiffusion
from .gaussians import ClassGaussians
from .io import atomic_to_csv, atomic_torch_save, load_weights
from .training import RUN_LENGTH_KEYS, array_digest, fingerprint, is_main_process, join_world, local_part, train
from .unet import EncoderUNet, count_parameters, load_network

SYNTHETIC, REAL = 0, 1


def encoder_kwargs(model_cfg: dict, resolution: int, channels: int, num_outputs: int) -> dict:
    return dict(
        image_size=resolution,
        in_channels=channels,
        model_channels=model_cfg["channels"],
        num_outputs=num_outputs,
        num_res_blocks=model_cfg["num_res_blocks"],
        attention_resolutions=tuple(model_cfg["attention_resolutions"]),
        channel_mult=tuple(model_cfg["channel_mult"]),
        dropout=model_cfg["dropout"],
        num_heads=model_cfg["num_heads"],
        embedding_dim=model_cfg["embedding_dim"],
        scale_shift=model_cfg["scale_shift"],
    )


def noisy_ce_losses(diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device):
    """Per-step closure: a random batch, t ~ U{0..T−1}, x_t ~ q(x_t | x_0), cross-entropy of g(f(x_t, t))."""

    def compute(model, generator):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        t = torch.randint(diffusion.num_timesteps, (batch_size,), generator=generator)
        noise = torch.randn((batch_size, *images.shape[1:]), generator=generator)
        idx, t, noise = local_part(idx, t, noise)  # this rank's share (all of it on one process)
        x_t = diffusion.q_sample(to_model_range(images[idx]), t, noise).to(device)
        logits = model(x_t, t.to(device))
        y = labels[idx].to(device)
        return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}

    return compute


@torch.no_grad()
def embed_images(model: EncoderUNet, images: np.ndarray, timesteps: np.ndarray | int, diffusion: GaussianDiffusion | None = None,
                 seed: int = 0, batch_size: int = 500, with_logits: bool = False):
    """f(x_t, t) of uint8 images (and g's logits if asked); images are noised to x_t with a
    seeded draw when t > 0 (`diffusion` then required)."""
    device = next(model.parameters()).device
    timesteps = np.broadcast_to(np.asarray(timesteps, dtype=np.int64), (len(images),)).copy()
    generator = torch.Generator().manual_seed(seed)
    embs, logits = [], []
    for start in range(0, len(images), batch_size):
        x0 = to_model_range(images[start:start + batch_size])
        t = torch.from_numpy(timesteps[start:start + batch_size])
        noise = torch.randn(x0.shape, generator=generator)
        x = x0 if diffusion is None else diffusion.q_sample(x0, t, noise)
        if diffusion is None and (t > 0).any():
            raise ValueError("noised embeddings need the diffusion chain")
        e = model.embed(x.to(device), t.to(device))
        embs.append(e.cpu())
        if with_logits:
            logits.append(model.head(e).cpu())
    emb = torch.cat(embs).numpy() if embs else np.zeros((0, model.embedding_dim), dtype=np.float32)
    return (emb, torch.cat(logits).numpy()) if with_logits else emb


def accuracy_by_timestep(model, split: Split, diffusion: GaussianDiffusion, timesteps, seed: int) -> pd.DataFrame:
    rows = []
    for t in timesteps:
        _, logits = embed_images(model, split.images, int(t), diffusion, seed=seed, with_logits=True)
        rows.append({"timestep": int(t), "accuracy": float((logits.argmax(1) == split.labels).mean()), "n": len(split.labels)})
    return pd.DataFrame(rows)


def _train_encoder(params: dict, section: str, train_split: Split, val_split: Split, model_path: str, accuracy_csv: str,
                   checkpoint_path: str, device: str) -> EncoderUNet:
    cfg, diffusion_cfg = params[section], params["diffusion"]
    dev = join_world(select_device(device))  # under torchrun: this rank's device in the data-parallel group
    arch = encoder_kwargs(cfg["model"], train_split.resolution, train_split.channels, len(train_split.class_names))
    torch.manual_seed(cfg["train"]["seed"])
    model = EncoderUNet(**arch)
    diffusion = training_diffusion(diffusion_cfg)
    compute = noisy_ce_losses(diffusion, torch.from_numpy(train_split.images), torch.from_numpy(train_split.labels),
                              cfg["train"]["batch_size"], dev)
    run_id = fingerprint({k: v for k, v in cfg["train"].items() if k not in RUN_LENGTH_KEYS},
                         cfg["model"], diffusion_cfg, array_digest(train_split.images, train_split.labels))
    ema, history = train(model, compute, cfg["train"], checkpoint_path, run_id, dev, desc=f"train_{section}")
    if not is_main_process():
        return ema
    accuracy = accuracy_by_timestep(ema, val_split, diffusion, cfg["eval_timesteps"], seed=cfg["train"]["seed"])
    atomic_torch_save({"state_dict": {k: v.cpu() for k, v in ema.state_dict().items()}, "arch": arch,
                       "class_names": list(train_split.class_names), "parameters": count_parameters(ema),
                       "history": history}, model_path)
    atomic_to_csv(accuracy.assign(network=section), accuracy_csv)
    return ema


def train_classifier(params: dict, data_path: str, val_path: str, model_path: str, accuracy_csv: str, checkpoint_path: str,
                     device: str = "auto") -> None:
    """Train g∘f on the training split; its accuracy on the validation split per timestep goes to `accuracy_csv`."""
    _train_encoder(params, "classifier", load_split(data_path), load_split(val_path), model_path, accuracy_csv, checkpoint_path, device)


def discriminator_splits(real: Split, samples_path: str, num_per_set: int, holdout: float, seed: int) -> tuple[Split, Split]:
    """Real training images (label 1) and an equal number of baseline samples (label 0), split
    into a training part and a held-out part with the same class balance."""
    with np.load(samples_path, allow_pickle=False) as f:
        synthetic = f["images"]
    n = min(num_per_set, len(synthetic), len(real.images))
    rng = np.random.default_rng(seed)
    real_idx = rng.choice(len(real.images), n, replace=False)
    synth_idx = rng.choice(len(synthetic), n, replace=False)
    n_hold = int(round(holdout * n))
    names = ("synthetic", "real")

    def part(sl):
        images = np.concatenate([synthetic[synth_idx[sl]], real.images[real_idx[sl]]])
        labels = np.concatenate([np.full(len(synth_idx[sl]), SYNTHETIC), np.full(len(real_idx[sl]), REAL)])
        return Split(images, labels.astype(np.int64), names)

    return part(slice(n_hold, None)), part(slice(0, n_hold))


def train_discriminator(params: dict, data_path: str, samples_path: str, model_path: str, accuracy_csv: str,
                        checkpoint_path: str, device: str = "auto") -> None:
    """Train the binary real-vs-synthetic discriminator (H′ of Eq. 6); held-out accuracy per timestep to `accuracy_csv`."""
    cfg = params["discriminator"]
    train_split, held_out = discriminator_splits(load_split(data_path), samples_path, cfg["num_per_set"], cfg["holdout"], cfg["train"]["seed"])
    _train_encoder(params, "discriminator", train_split, held_out, model_path, accuracy_csv, checkpoint_path, device)


def load_encoder(path: str, device: torch.device) -> tuple[EncoderUNet, dict]:
    return load_network(path, EncoderUNet, device)


def bucket_edges(num_steps: int, num_buckets: int) -> np.ndarray:
    """Bucket 0 is the clean images (t = 0); `num_buckets` more split [1, T) into equal ranges.

    Final samples are always scored in bucket 0, so hardness values are comparable across
    both choices."""
    noisy = np.linspace(1, num_steps, num_buckets + 1).round().astype(np.int64)[1:]
    return np.concatenate([[0, 1], noisy])


def fit_gaussians_for(model: EncoderUNet, split: Split, cfg: dict, diffusion_cfg: dict) -> tuple[ClassGaussians, pd.DataFrame]:
    """Class Gaussians of `model`'s embeddings of `split` (at most `max_per_class` images of a
    class): of clean images (bucket 0; alone when noise_buckets = 0, paper-literal) and, per
    noise bucket, of each image noised to a uniformly drawn t in it."""
    diffusion = training_diffusion(diffusion_cfg)
    edges = bucket_edges(diffusion.num_timesteps, cfg["noise_buckets"])
    rng = np.random.default_rng(cfg["seed"])
    keep = stratified_subset(split.labels, cfg.get("max_per_class"), cfg["seed"])
    split = Split(split.images[keep], split.labels[keep], split.class_names)
    embs, labels, buckets = [], [], []
    for b in range(len(edges) - 1):
        t = rng.integers(edges[b], edges[b + 1], len(split.images))
        embs.append(embed_images(model, split.images, t, diffusion, seed=cfg["seed"] + b))
        labels.append(split.labels)
        buckets.append(np.full(len(split.labels), b))
    gaussians, summary = ClassGaussians.fit(np.concatenate(embs), np.concatenate(labels), len(split.class_names), cfg["shrinkage"],
                                            np.concatenate(buckets), edges)
    return gaussians, pd.DataFrame(summary).assign(t_low=lambda d: edges[d["bucket"]], t_high=lambda d: edges[d["bucket"] + 1])


def fit_class_gaussians(params: dict, model_path: str, data_path: str, out_path: str, summary_csv: str,
                        samples_path: str | None = None, device: str = "auto") -> None:
    """Fit and store the class Gaussians of the classifier (on the training split) or, with
    `samples_path`, of the discriminator (on its own training set: real vs baseline)."""
    cfg, diffusion_cfg = params["gaussians"], params["diffusion"]
    model, _ = load_encoder(model_path, select_device(device))
    split = load_split(data_path)
    if samples_path is not None:
        disc = params["discriminator"]
        split, _ = discriminator_splits(split, samples_path, disc["num_per_set"], disc["holdout"], disc["train"]["seed"])
    gaussians, summary = fit_gaussians_for(model, split, cfg, diffusion_cfg)
    atomic_torch_save(gaussians.state_dict(), out_path)
    atomic_to_csv(summary, summary_csv)


def load_gaussians(path: str) -> ClassGaussians:
    return ClassGaussians.from_state_dict(load_weights(path))
