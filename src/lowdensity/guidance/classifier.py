"""The time-conditioned classifier g∘f and the real-vs-synthetic discriminator (paper Section 3.2).

Both are the U-Net's encoder with a pooled embedding f(x, t) ∈ R^k and a linear head g,
trained with cross-entropy on x_t ~ q(x_t | x_0), so that they can guide every step of
the reverse process. The classifier draws t uniformly from the chain (as ADM's noisy
classifier). The discriminator has two classes: 0 = synthetic (baseline samples),
1 = real (training images), as in paper Eq. 6; the paper says only that it shares the
classifier's architecture, so how it is trained is configurable (`discriminator.*`):

- `timesteps: {max, power, law}`: with `law: power` (the default) t = ⌊max · u^power⌋ with
  u ~ U(0, 1); power 1 and max T is ADM's uniform draw, power > 1 weights training towards low
  noise, where the real-vs-synthetic cues live. `law: likelihood` draws t < max with
  P(t) ∝ β_t / (1 − ᾱ_t), the likelihood weighting of the chain's terms, which is Discriminator
  Guidance's importance sampling of t (Kim et al. 2023) on a discrete chain
  (`timestep_probabilities` gives either law);
- `features: own` trains the whole encoder (`init` says from what); `frozen_classifier` keeps the
  trained classifier's encoder frozen and trains a small time-conditioned head on its embedding
  (`networks.unet.FrozenEncoderHead`), as Discriminator Guidance builds its discriminator;
- `init: classifier` starts from the trained classifier's weights with a new two-way head
  (the paper's H′ shares its architecture), `scratch` from a random initialisation;
- `train.random_flip` flips half of each batch horizontally (both classes alike);
- `num_per_set` real and synthetic images each, of which `holdout` (a fraction of the
  baseline set, the same images for every setting) are held out; `extra_samples` more
  baseline-sampler images (the baseline's seed stream continued) enlarge the synthetic side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lowdensity.core.diffusion import GaussianDiffusion
from lowdensity.core.training import (
    local_part,
)
from lowdensity.data import Split, to_model_range
from lowdensity.guidance.gaussians import ClassGaussians
from lowdensity.io import load_weights
from lowdensity.networks.unet import EncoderUNet, FrozenEncoderHead, network_from_state

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


def timestep_probabilities(num_steps: int, timesteps_cfg: dict | None, betas: np.ndarray | None = None) -> np.ndarray:
    """P(t = k), k = 0 … T−1, of `draw_timesteps`. Law `power`: t = ⌊m · u^p⌋ with u ~ U(0, 1),
    m = `max` (default T) and p = `power` (default 1), so P(t = k) = ((k+1)/m)^(1/p) − (k/m)^(1/p)
    for k < m. Law `likelihood`: P(t = k) ∝ β_k / (1 − ᾱ_k) for k < m (the chain's `betas`)."""
    t_max, power, law = timestep_law(num_steps, timesteps_cfg)
    probabilities = np.zeros(num_steps)
    if law == "likelihood":
        if betas is None:
            raise ValueError("timesteps.law 'likelihood' needs the chain's betas")
        betas = np.asarray(betas, dtype=np.float64)
        weights = betas / (1.0 - np.cumprod(1.0 - betas))
        probabilities[:t_max] = weights[:t_max] / weights[:t_max].sum()
        return probabilities
    k = np.arange(t_max + 1, dtype=np.float64)
    probabilities[:t_max] = np.diff((k / t_max) ** (1.0 / power))
    return probabilities


def timestep_law(num_steps: int, timesteps_cfg: dict | None) -> tuple[int, float, str]:
    """(max, power, law) of a `timesteps` section, with their defaults (T, 1, power)."""
    cfg = timesteps_cfg or {}
    t_max = int(cfg.get("max") or num_steps)
    if not 1 <= t_max <= num_steps:
        raise ValueError(f"timesteps.max must be in 1 … {num_steps} (diffusion.num_steps), not {t_max}")
    law = cfg.get("law", "power")
    if law not in ("power", "likelihood"):
        raise ValueError(f"timesteps.law must be 'power' or 'likelihood', not {law!r}")
    return t_max, float(cfg.get("power", 1.0)), law


def draw_timesteps(
    n: int,
    num_steps: int,
    timesteps_cfg: dict | None,
    generator: torch.Generator,
    betas: np.ndarray | None = None,
) -> torch.Tensor:
    """n training timesteps: uniform on {0 … T−1} (ADM) by default, else t = ⌊max · u^power⌋, or
    drawn from the likelihood law of `timestep_probabilities` (which needs the chain's `betas`)."""
    t_max, power, law = timestep_law(num_steps, timesteps_cfg)
    if law == "likelihood":
        probabilities = torch.from_numpy(timestep_probabilities(num_steps, timesteps_cfg, betas))
        return torch.multinomial(probabilities, n, replacement=True, generator=generator)
    if t_max == num_steps and power == 1.0:
        return torch.randint(num_steps, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (t_max * u**power).floor().long().clamp_(max=t_max - 1)


def noisy_ce_losses(
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device,
    timesteps_cfg: dict | None = None,
    random_flip: bool = False,
):
    """Per-step closure: a random batch, t from `draw_timesteps`, x_t ~ q(x_t | x_0) (of a
    horizontally flipped x_0 for a random half if `random_flip`), cross-entropy of g(f(x_t, t))."""

    def compute(model, generator):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        t = draw_timesteps(batch_size, diffusion.num_timesteps, timesteps_cfg, generator, diffusion.betas)
        noise = torch.randn((batch_size, *images.shape[1:]), generator=generator)
        flip = (
            torch.rand(batch_size, generator=generator) < 0.5
            if random_flip
            else torch.zeros(batch_size, dtype=torch.bool)
        )
        idx, t, noise, flip = local_part(idx, t, noise, flip)  # this rank's share (all of it on one process)
        x0 = to_model_range(images[idx])
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        x_t = diffusion.q_sample(x0, t, noise).to(device)
        logits = model(x_t, t.to(device))
        y = labels[idx].to(device)
        return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}

    return compute


@torch.no_grad()
def embed_images(
    model: EncoderUNet,
    images: np.ndarray,
    timesteps: np.ndarray | int,
    diffusion: GaussianDiffusion | None = None,
    seed: int = 0,
    batch_size: int = 500,
    with_logits: bool = False,
):
    """f(x_t, t) of uint8 images (and g's logits if asked); images are noised to x_t with a
    seeded draw when t > 0 (`diffusion` then required)."""
    device = next(model.parameters()).device
    timesteps = np.broadcast_to(np.asarray(timesteps, dtype=np.int64), (len(images),)).copy()
    generator = torch.Generator().manual_seed(seed)
    embs, logits = [], []
    for start in range(0, len(images), batch_size):
        x0 = to_model_range(images[start : start + batch_size])
        t = torch.from_numpy(timesteps[start : start + batch_size])
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


def remove_dark_cue(images: np.ndarray, threshold: int) -> np.ndarray:
    """Every pixel value ≤ `threshold` set to 0: applied to real and synthetic images alike, it
    removes the cue of an exactly-black background (real images have one, DDPM samples rarely)."""
    return np.where(images <= threshold, 0, images).astype(np.uint8)


def evaluate_by_timestep(
    model, split: Split, diffusion: GaussianDiffusion, timesteps, seed: int, dark_thresholds=()
) -> pd.DataFrame:
    """Accuracy and cross-entropy of g(f(x_t, t)) on `split` at each t: on the images as they
    are (condition 'as is') and, for each threshold c, with `remove_dark_cue(images, c)`. A
    two-class network (the discriminator) also gets the ROC-AUC of its logit difference
    (real − synthetic), which does not depend on where the decision threshold sits."""
    from sklearn.metrics import roc_auc_score

    conditions = [("as is", split.images)] + [
        (f"dark <= {c} set to 0", remove_dark_cue(split.images, c)) for c in dark_thresholds
    ]
    labels = torch.from_numpy(split.labels)
    rows = []
    for condition, images in conditions:
        for t in timesteps:
            _, logits = embed_images(model, images, int(t), diffusion, seed=seed, with_logits=True)
            logits = torch.from_numpy(logits)
            row = {
                "condition": condition,
                "timestep": int(t),
                "accuracy": float((logits.argmax(1) == labels).float().mean()),
                "loss": float(F.cross_entropy(logits, labels)),
                "n": len(labels),
            }
            if logits.shape[1] == 2 and len(np.unique(split.labels)) == 2:
                row["roc_auc"] = float(roc_auc_score(split.labels == REAL, (logits[:, REAL] - logits[:, SYNTHETIC])))
            rows.append(row)
    return pd.DataFrame(rows)


def init_from_classifier(model: EncoderUNet, classifier_path: str) -> None:
    """Copy every weight of the trained classifier into `model` except the head g (its
    number of outputs differs); the architectures must otherwise be equal."""
    state = load_weights(classifier_path)
    ours = model.state_dict()
    mismatched = [
        k
        for k, v in state["state_dict"].items()
        if not k.startswith("head.") and (k not in ours or ours[k].shape != v.shape)
    ]
    if mismatched or set(ours) - set(state["state_dict"]):
        raise ValueError(
            f"discriminator.init is 'classifier' but discriminator.model differs from classifier.model "
            f"({len(mismatched)} mismatched weights, e.g. {mismatched[:2]}): "
            "use the same model settings or init 'scratch'"
        )
    model.load_state_dict({k: v for k, v in state["state_dict"].items() if not k.startswith("head.")}, strict=False)


ENCODER_BUILDS = {"own": EncoderUNet, "frozen_classifier": FrozenEncoderHead}  # discriminator.features


def load_encoder(path: str, device: torch.device) -> tuple[EncoderUNet | FrozenEncoderHead, dict]:
    """A trained classifier or discriminator of either build (the file's `build`, `own` if absent)."""
    state = load_weights(path)
    return network_from_state(state, ENCODER_BUILDS[state.get("build", "own")], device), state


def bucket_edges(num_steps: int, num_buckets: int) -> np.ndarray:
    """Bucket 0 is the clean images (t = 0); `num_buckets` more split [1, T) into equal ranges.

    Final samples are always scored in bucket 0, so hardness values are comparable across
    both choices."""
    noisy = np.linspace(1, num_steps, num_buckets + 1).round().astype(np.int64)[1:]
    return np.concatenate([[0, 1], noisy])


def load_gaussians(path: str) -> ClassGaussians:
    return ClassGaussians.from_state_dict(load_weights(path))
