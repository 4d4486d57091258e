"""The time-conditioned classifier g∘f and the real-vs-synthetic discriminator (paper Section 3.2).

Both are the U-Net's encoder with a pooled embedding f(x, t) ∈ R^k and a linear head g,
trained with cross-entropy on x_t ~ q(x_t | x_0), so that they can guide every step of
the reverse process. The classifier draws t uniformly from the chain (as ADM's noisy
classifier). The discriminator has two classes: 0 = synthetic (baseline samples),
1 = real (training images), as in paper Eq. 6; the paper says only that it shares the
classifier's architecture, so how it is trained is configurable (`discriminator.*`):

- `timesteps: {max, power}`: t = ⌊max · u^power⌋ with u ~ U(0, 1); power 1 and max T is
  ADM's uniform draw, power > 1 weights training towards low noise, where the
  real-vs-synthetic cues live (`timestep_probabilities` gives the law);
- `init: classifier` starts from the trained classifier's weights with a new two-way head
  (the paper's H′ shares its architecture), `scratch` from a random initialisation;
- `train.random_flip` flips half of each batch horizontally (both classes alike);
- `num_per_set` real and synthetic images each, of which `holdout` (a fraction of the
  baseline set, the same images for every setting) are held out; `extra_samples` more
  baseline-sampler images (the baseline's seed stream continued) enlarge the synthetic side.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .data import Split, load_split, read_sample_set, stratified_subset, to_model_range
from .ddpm import select_device, training_diffusion
from .diffusion import GaussianDiffusion
from .gaussians import ClassGaussians
from .io import atomic_to_csv, atomic_torch_save, load_weights
from .training import array_digest, fingerprint, is_main_process, join_world, local_part, train, trajectory_config
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


def timestep_probabilities(num_steps: int, timesteps_cfg: dict | None) -> np.ndarray:
    """P(t = k), k = 0 … T−1, of `draw_timesteps`: t = ⌊m · u^p⌋ with u ~ U(0, 1), m = `max`
    (default T) and p = `power` (default 1), so P(t = k) = ((k+1)/m)^(1/p) − (k/m)^(1/p) for k < m."""
    t_max, power = timestep_law(num_steps, timesteps_cfg)
    k = np.arange(t_max + 1, dtype=np.float64)
    probabilities = np.zeros(num_steps)
    probabilities[:t_max] = np.diff((k / t_max) ** (1.0 / power))
    return probabilities


def timestep_law(num_steps: int, timesteps_cfg: dict | None) -> tuple[int, float]:
    cfg = timesteps_cfg or {}
    t_max = int(cfg.get("max") or num_steps)
    if not 1 <= t_max <= num_steps:
        raise ValueError(f"timesteps.max must be in 1 … {num_steps} (diffusion.num_steps), not {t_max}")
    return t_max, float(cfg.get("power", 1.0))


def draw_timesteps(n: int, num_steps: int, timesteps_cfg: dict | None, generator: torch.Generator) -> torch.Tensor:
    """n training timesteps: uniform on {0 … T−1} (ADM) by default, else t = ⌊max · u^power⌋."""
    t_max, power = timestep_law(num_steps, timesteps_cfg)
    if t_max == num_steps and power == 1.0:
        return torch.randint(num_steps, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (t_max * u ** power).floor().long().clamp_(max=t_max - 1)


def noisy_ce_losses(diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device,
                    timesteps_cfg: dict | None = None, random_flip: bool = False):
    """Per-step closure: a random batch, t from `draw_timesteps`, x_t ~ q(x_t | x_0) (of a
    horizontally flipped x_0 for a random half if `random_flip`), cross-entropy of g(f(x_t, t))."""

    def compute(model, generator):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        t = draw_timesteps(batch_size, diffusion.num_timesteps, timesteps_cfg, generator)
        noise = torch.randn((batch_size, *images.shape[1:]), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5 if random_flip else torch.zeros(batch_size, dtype=torch.bool)
        idx, t, noise, flip = local_part(idx, t, noise, flip)  # this rank's share (all of it on one process)
        x0 = to_model_range(images[idx])
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        x_t = diffusion.q_sample(x0, t, noise).to(device)
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


def remove_dark_cue(images: np.ndarray, threshold: int) -> np.ndarray:
    """Every pixel value ≤ `threshold` set to 0: applied to real and synthetic images alike, it
    removes the cue of an exactly-black background (real images have one, DDPM samples rarely)."""
    return np.where(images <= threshold, 0, images).astype(np.uint8)


def evaluate_by_timestep(model, split: Split, diffusion: GaussianDiffusion, timesteps, seed: int,
                         dark_thresholds=()) -> pd.DataFrame:
    """Accuracy and cross-entropy of g(f(x_t, t)) on `split` at each t: on the images as they
    are (condition 'as is') and, for each threshold c, with `remove_dark_cue(images, c)`."""
    conditions = [("as is", split.images)] + [(f"dark <= {c} set to 0", remove_dark_cue(split.images, c)) for c in dark_thresholds]
    labels = torch.from_numpy(split.labels)
    rows = []
    for condition, images in conditions:
        for t in timesteps:
            _, logits = embed_images(model, images, int(t), diffusion, seed=seed, with_logits=True)
            logits = torch.from_numpy(logits)
            rows.append({"condition": condition, "timestep": int(t),
                         "accuracy": float((logits.argmax(1) == labels).float().mean()),
                         "loss": float(F.cross_entropy(logits, labels)), "n": len(labels)})
    return pd.DataFrame(rows)


def init_from_classifier(model: EncoderUNet, classifier_path: str) -> None:
    """Copy every weight of the trained classifier into `model` except the head g (its
    number of outputs differs); the architectures must otherwise be equal."""
    state = load_weights(classifier_path)
    ours = model.state_dict()
    mismatched = [k for k, v in state["state_dict"].items() if not k.startswith("head.") and (k not in ours or ours[k].shape != v.shape)]
    if mismatched or set(ours) - set(state["state_dict"]):
        raise ValueError(f"discriminator.init is 'classifier' but discriminator.model differs from classifier.model "
                         f"({len(mismatched)} mismatched weights, e.g. {mismatched[:2]}): use the same model settings or init 'scratch'")
    model.load_state_dict({k: v for k, v in state["state_dict"].items() if not k.startswith("head.")}, strict=False)


def _train_encoder(params: dict, section: str, train_split: Split, val_split: Split, model_path: str, accuracy_csv: str,
                   checkpoint_path: str, device: str, init_path: str | None = None, dark_thresholds=()) -> EncoderUNet:
    cfg, diffusion_cfg = params[section], params["diffusion"]
    dev = join_world(select_device(device))  # under torchrun: this rank's device in the data-parallel group
    arch = encoder_kwargs(cfg["model"], train_split.resolution, train_split.channels, len(train_split.class_names))
    torch.manual_seed(cfg["train"]["seed"])
    model = EncoderUNet(**arch)
    if init_path:
        init_from_classifier(model, init_path)
    diffusion = training_diffusion(diffusion_cfg)
    compute = noisy_ce_losses(diffusion, torch.from_numpy(train_split.images), torch.from_numpy(train_split.labels),
                              cfg["train"]["batch_size"], dev, cfg.get("timesteps"), cfg["train"].get("random_flip", False))
    run_id = fingerprint(trajectory_config(cfg["train"]),
                         cfg["model"], diffusion_cfg, cfg.get("timesteps"),
                         hashlib.sha256(Path(init_path).read_bytes()).hexdigest() if init_path else None,  # the weights it starts from
                         array_digest(train_split.images, train_split.labels))
    ema, history = train(model, compute, cfg["train"], checkpoint_path, run_id, dev, desc=f"train_{section}")
    law = timestep_law(diffusion.num_timesteps, cfg.get("timesteps"))  # the guided sampler consults the network only at t < max
    if not is_main_process():
        return ema
    accuracy = evaluate_by_timestep(ema, val_split, diffusion, cfg["eval_timesteps"], cfg["train"]["seed"], dark_thresholds)
    atomic_torch_save({"state_dict": {k: v.cpu() for k, v in ema.state_dict().items()}, "arch": arch,
                       "class_names": list(train_split.class_names), "parameters": count_parameters(ema),
                       "history": history, "timesteps": dict(zip(("max", "power"), law))}, model_path)
    atomic_to_csv(accuracy.assign(network=section), accuracy_csv)
    return ema


def train_classifier(params: dict, data_path: str, val_path: str, model_path: str, accuracy_csv: str, checkpoint_path: str,
                     device: str = "auto") -> None:
    """Train g∘f on the training split; its accuracy on the validation split per timestep goes to `accuracy_csv`."""
    _train_encoder(params, "classifier", load_split(data_path), load_split(val_path), model_path, accuracy_csv, checkpoint_path, device)


def load_synthetic(samples_paths: list[str], extra_samples: int, shape: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int]:
    """uint8 images of the baseline set followed by the first `extra_samples` of the extra pool
    (the second path, if any), and the baseline set's size; each file checked against the real
    images' (C, H, W) = `shape`."""
    images = [read_sample_set(samples_paths[0], shape, keys=("images",))["images"]]
    if extra_samples:
        if len(samples_paths) < 2:
            raise ValueError(f"discriminator.extra_samples is {extra_samples} but no extra sample pool was given")
        pool = read_sample_set(samples_paths[1], shape, keys=("images",))["images"]
        if len(pool) < extra_samples:
            raise ValueError(f"{samples_paths[1]} holds {len(pool)} images, fewer than discriminator.extra_samples = {extra_samples}")
        images.append(pool[:extra_samples])
    return np.concatenate(images), len(images[0])


def discriminator_splits(real: Split, samples_paths: list[str], disc_cfg: dict) -> tuple[Split, Split]:
    """Real training images (label 1) and as many synthetic images (label 0), split into a
    training part and a held-out part.

    The held-out part is `holdout` × (the baseline set's size) of each, drawn first from the
    seeded permutations, so it is the same images whatever `num_per_set` or `extra_samples`;
    the training part is the next `num_per_set` − held-out of each (at most what remains)."""
    synthetic, n_baseline = load_synthetic(samples_paths, disc_cfg.get("extra_samples", 0), real.images.shape[1:])
    rng_hold, rng_rest, rng_real = (np.random.default_rng(s) for s in np.random.SeedSequence(disc_cfg["train"]["seed"]).spawn(3))
    n_hold = int(round(disc_cfg["holdout"] * n_baseline))
    hold_synth = rng_hold.permutation(n_baseline)[:n_hold]
    rest_synth = np.setdiff1d(np.arange(len(synthetic)), hold_synth)
    rest_synth = rest_synth[rng_rest.permutation(len(rest_synth))]
    real_perm = rng_real.permutation(len(real.images))
    n_train = min(disc_cfg["num_per_set"] - n_hold, len(rest_synth), len(real.images) - n_hold)
    names = ("synthetic", "real")

    def part(synth_idx, real_idx):
        images = np.concatenate([synthetic[synth_idx], real.images[real_idx]])
        labels = np.concatenate([np.full(len(synth_idx), SYNTHETIC), np.full(len(real_idx), REAL)])
        return Split(images, labels.astype(np.int64), names)

    return part(rest_synth[:n_train], real_perm[n_hold:n_hold + n_train]), part(hold_synth, real_perm[:n_hold])


def train_discriminator(params: dict, data_path: str, samples_paths: list[str], model_path: str, accuracy_csv: str,
                        checkpoint_path: str, device: str = "auto", classifier_path: str | None = None) -> None:
    """Train the binary real-vs-synthetic discriminator (H′ of Eq. 6) as `params['discriminator']`
    says; held-out accuracy and loss per timestep, also with the dark-background cue removed
    (`dark_thresholds`), to `accuracy_csv`."""
    cfg = params["discriminator"]
    if cfg.get("init", "scratch") == "classifier" and not classifier_path:
        raise ValueError("discriminator.init is 'classifier': the trained classifier's model.pt is needed (--classifier)")
    train_split, held_out = discriminator_splits(load_split(data_path), samples_paths, cfg)
    _train_encoder(params, "discriminator", train_split, held_out, model_path, accuracy_csv, checkpoint_path, device,
                   init_path=classifier_path if cfg.get("init", "scratch") == "classifier" else None,
                   dark_thresholds=cfg.get("dark_thresholds", ()))


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
                        samples_paths: list[str] | None = None, device: str = "auto") -> None:
    """Fit and store the class Gaussians of the classifier (on the training split) or, with
    `samples_paths`, of the discriminator (on its own training set: real vs baseline)."""
    cfg, diffusion_cfg = params["gaussians"], params["diffusion"]
    model, _ = load_encoder(model_path, select_device(device))
    split = load_split(data_path)
    if samples_paths is not None:
        split, _ = discriminator_splits(split, samples_paths, params["discriminator"])
    gaussians, summary = fit_gaussians_for(model, split, cfg, diffusion_cfg)
    atomic_torch_save(gaussians.state_dict(), out_path)
    atomic_to_csv(summary, summary_csv)


def load_gaussians(path: str) -> ClassGaussians:
    return ClassGaussians.from_state_dict(load_weights(path))
