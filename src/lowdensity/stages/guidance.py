"""The guides' stages: train the time-conditioned classifier and the real-vs-synthetic
discriminator H′, fit their class Gaussians (Eq. 3), and draw α/β-guided samples (Algorithm 1)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
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
from lowdensity.data import Split, load_split, read_sample_set, stratified_subset
from lowdensity.guidance.classifier import (
    REAL,
    SYNTHETIC,
    bucket_edges,
    embed_images,
    encoder_kwargs,
    evaluate_by_timestep,
    init_from_classifier,
    load_encoder,
    noisy_ce_losses,
    timestep_law,
)
from lowdensity.guidance.gaussians import ClassGaussians
from lowdensity.guidance.guided import Guide, GuidedCell, make_cond_fn
from lowdensity.io import atomic_to_csv, atomic_torch_save, load_weights
from lowdensity.networks.ddpm import training_diffusion
from lowdensity.networks.unet import EncoderUNet, FrozenEncoderHead, count_parameters
from lowdensity.runtime import select_device, with_precision


def frozen_head_kwargs(cfg: dict, classifier_arch: dict, num_outputs: int) -> dict:
    """`FrozenEncoderHead`'s arguments: the classifier's architecture, and the head's width,
    embedding (k of Eq. 3, `model.embedding_dim`) and dropout (`model.dropout`) from `cfg`."""
    return {
        "encoder": dict(classifier_arch),
        "width": cfg["head_width"],
        "embedding_dim": cfg["model"]["embedding_dim"],
        "num_outputs": num_outputs,
        "dropout": cfg["model"]["dropout"],
    }


def train_encoder(
    params: dict,
    section: str,
    *,
    train_split: Split,
    val_split: Split,
    model_path: str,
    accuracy_csv: str,
    checkpoint_path: str,
    device: str,
    init_path: str | None = None,
    dark_thresholds=(),
) -> EncoderUNet | FrozenEncoderHead:
    """Train a time-conditioned encoder (the classifier g∘f, the discriminator H′ or minority
    guidance's classifier) of `params[section]` on noisy images of `train_split` with the chain of
    `params['diffusion']`, resumable from `checkpoint_path`; write its EMA weights to `model_path`
    and its accuracy on `val_split` per timestep (also with dark pixels ≤ each of
    `dark_thresholds` set to 0) to `accuracy_csv`. `init_path`: the classifier it starts from
    (`init: classifier`) or whose frozen encoder it trains a head on (`features: frozen_classifier`)."""
    cfg, diffusion_cfg = params[section], params["diffusion"]
    dev = join_world(select_device(device))  # under torchrun: this rank's device in the data-parallel group
    train_cfg = with_precision(cfg["train"], dev)
    build = cfg.get("features", "own")
    num_outputs = len(train_split.class_names)
    torch.manual_seed(train_cfg["seed"])
    if build == "frozen_classifier":
        if not init_path:
            raise ValueError(f"{section}.features is 'frozen_classifier': the trained classifier's model.pt is needed")
        classifier = load_weights(init_path)
        arch = frozen_head_kwargs(cfg, classifier["arch"], num_outputs)
        model = FrozenEncoderHead(**arch)
        model.encoder.load_state_dict(classifier["state_dict"])
    else:
        arch = encoder_kwargs(cfg["model"], train_split.resolution, train_split.channels, num_outputs)
        model = EncoderUNet(**arch)
        if init_path:
            init_from_classifier(model, init_path)
    diffusion = training_diffusion(diffusion_cfg)
    compute = noisy_ce_losses(
        diffusion,
        torch.from_numpy(train_split.images),
        torch.from_numpy(train_split.labels),
        train_cfg["batch_size"],
        dev,
        cfg.get("timesteps"),
        train_cfg.get("random_flip", False),
    )
    run_id = fingerprint(
        trajectory_config(train_cfg),
        cfg["model"],
        diffusion_cfg,
        cfg.get("timesteps"),
        hashlib.sha256(Path(init_path).read_bytes()).hexdigest() if init_path else None,  # the weights it starts from
        array_digest(train_split.images, train_split.labels),
    )
    ema, history = train(model, compute, train_cfg, checkpoint_path, run_id, dev, desc=f"train_{section}")
    t_max, power, law = timestep_law(diffusion.num_timesteps, cfg.get("timesteps"))  # consulted only at t < max
    if not is_main_process():
        return ema
    accuracy = evaluate_by_timestep(
        ema, val_split, diffusion, cfg["eval_timesteps"], train_cfg["seed"], dark_thresholds
    )
    atomic_torch_save(
        {
            "state_dict": {k: v.cpu() for k, v in ema.state_dict().items()},
            "arch": arch,
            "build": build,
            "class_names": list(train_split.class_names),
            "parameters": count_parameters(ema),
            "history": history,
            "timesteps": {"max": t_max, "power": power, "law": law},
            "precision": train_cfg["precision"],
        },
        model_path,
    )
    atomic_to_csv(accuracy.assign(network=section), accuracy_csv)
    return ema


def train_classifier(
    *,
    params: dict,
    data: str,
    val: str,
    model: str,
    accuracy: str,
    checkpoint: str,
    device: str = "auto",
) -> None:
    """Train g∘f on the training split; its accuracy on the validation split per timestep goes to `accuracy_csv`.

    Args:
        params: {"classifier": ..., "diffusion": ...} of the config.
        data: the prepared training split.
        val: the prepared validation split.
        model: the classifier's weights.
        accuracy: its validation accuracy per timestep (CSV).
        checkpoint: the resumable checkpoint.
        device: where to train (auto: CUDA when present).
    """
    train_encoder(
        params,
        "classifier",
        train_split=load_split(data),
        val_split=load_split(val),
        model_path=model,
        accuracy_csv=accuracy,
        checkpoint_path=checkpoint,
        device=device,
    )


def load_synthetic(
    samples_paths: list[str], extra_samples: int, shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, int]:
    """uint8 images of the baseline set followed by the first `extra_samples` of the extra pool
    (the second path, if any), and the baseline set's size; each file checked against the real
    images' (C, H, W) = `shape`."""
    images = [read_sample_set(samples_paths[0], shape, keys=("images",))["images"]]
    if extra_samples:
        if len(samples_paths) < 2:
            raise ValueError(f"discriminator.extra_samples is {extra_samples} but no extra sample pool was given")
        pool = read_sample_set(samples_paths[1], shape, keys=("images",))["images"]
        if len(pool) < extra_samples:
            raise ValueError(
                f"{samples_paths[1]} holds {len(pool)} images, fewer than discriminator.extra_samples = {extra_samples}"
            )
        images.append(pool[:extra_samples])
    return np.concatenate(images), len(images[0])


def discriminator_splits(real: Split, samples_paths: list[str], disc_cfg: dict) -> tuple[Split, Split]:
    """Real training images (label 1) and as many synthetic images (label 0), split into a
    training part and a held-out part.

    The held-out part is `holdout` × (the baseline set's size) of each, drawn first from the
    seeded permutations, so it is the same images whatever `num_per_set` or `extra_samples`;
    the training part is the next `num_per_set` − held-out of each (at most what remains)."""
    synthetic, n_baseline = load_synthetic(samples_paths, disc_cfg.get("extra_samples", 0), real.images.shape[1:])
    rng_hold, rng_rest, rng_real = (
        np.random.default_rng(s) for s in np.random.SeedSequence(disc_cfg["train"]["seed"]).spawn(3)
    )
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

    return part(rest_synth[:n_train], real_perm[n_hold : n_hold + n_train]), part(hold_synth, real_perm[:n_hold])


def train_discriminator(
    *,
    params: dict,
    data: str,
    samples: list[str],
    model: str,
    accuracy: str,
    checkpoint: str,
    device: str = "auto",
    classifier: str | None = None,
) -> None:
    """Train the binary real-vs-synthetic discriminator (H′ of Eq. 6) as `params['discriminator']`
    says; held-out accuracy and loss per timestep, also with the dark-background cue removed
    (`dark_thresholds`), to `accuracy_csv`.

    Args:
        params: {"discriminator": ..., "diffusion": ...} of the config.
        data: the prepared training split (the real images).
        samples: the baseline set [and the extra synthetic pool].
        model: the discriminator's weights.
        accuracy: its held-out accuracy per timestep (CSV).
        checkpoint: the resumable checkpoint.
        device: where to train (auto: CUDA when present).
        classifier: the trained classifier (discriminator.init: classifier).
    """
    cfg = params["discriminator"]
    needs_classifier = cfg.get("init", "scratch") == "classifier" or cfg.get("features", "own") == "frozen_classifier"
    if needs_classifier and not classifier:
        raise ValueError(
            "discriminator.init is 'classifier' or discriminator.features is 'frozen_classifier': "
            "the trained classifier's model.pt is needed (--classifier)"
        )
    train_split, held_out = discriminator_splits(load_split(data), samples, cfg)
    train_encoder(
        params,
        "discriminator",
        train_split=train_split,
        val_split=held_out,
        model_path=model,
        accuracy_csv=accuracy,
        checkpoint_path=checkpoint,
        device=device,
        init_path=classifier if needs_classifier else None,
        dark_thresholds=cfg.get("dark_thresholds", ()),
    )


def fit_gaussians_for(
    model: EncoderUNet, split: Split, cfg: dict, diffusion_cfg: dict
) -> tuple[ClassGaussians, pd.DataFrame]:
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
    gaussians, summary = ClassGaussians.fit(
        np.concatenate(embs),
        np.concatenate(labels),
        len(split.class_names),
        cfg["shrinkage"],
        np.concatenate(buckets),
        edges,
    )
    return gaussians, pd.DataFrame(summary).assign(
        t_low=lambda d: edges[d["bucket"]], t_high=lambda d: edges[d["bucket"] + 1]
    )


def fit_class_gaussians(
    *,
    params: dict,
    model: str,
    data: str,
    out: str,
    summary: str,
    samples: list[str] | None = None,
    device: str = "auto",
) -> None:
    """Fit and store the class Gaussians of the classifier (on the training split) or, with
    `samples`, of the discriminator (on its own training set: real vs baseline).

    Args:
        params: {"gaussians": ..., "diffusion": ...[, "discriminator": ...]} of the config.
        model: the encoder (classifier or discriminator).
        data: the prepared training split.
        out: the Gaussians (.pt).
        summary: their per-class summary (CSV).
        samples: the discriminator's synthetic sets: fit its real/synthetic Gaussians.
        device: where to run (auto: CUDA when present).
    """
    cfg, diffusion_cfg = params["gaussians"], params["diffusion"]
    encoder, _ = load_encoder(model, select_device(device))
    split = load_split(data)
    if samples is not None:
        split, _ = discriminator_splits(split, samples, params["discriminator"])
    gaussians, table = fit_gaussians_for(encoder, split, cfg, diffusion_cfg)
    atomic_torch_save(gaussians.state_dict(), out)
    atomic_to_csv(table, summary)


@dataclass(frozen=True)
class GuidePaths:
    """A guide's two files, which travel together (`--classifier.model … --classifier.gaussians …`).

    Args:
        model: the encoder's weights (train-classifier or train-discriminator).
        gaussians: its class Gaussians (fit-gaussians).
    """

    model: str
    gaussians: str


def load_guide(paths: GuidePaths, device: torch.device) -> Guide:
    """The encoder, its Gaussians and the end of the timesteps it was trained on."""
    from lowdensity.guidance.classifier import load_encoder, load_gaussians

    model, state = load_encoder(paths.model, device)
    law = state.get("timesteps") or {}
    return Guide(model, load_gaussians(paths.gaussians), law.get("max"))


def sample_guided_shard(
    *,
    params: dict,
    cell: GuidedCell,
    model: str,
    classifier: Optional[GuidePaths] = None,
    discriminator: Optional[GuidePaths] = None,
    shard: int,
    out: str,
    device: str = "auto",
    extra_metadata: Optional[dict] = None,
    keep_state_below: Optional[int] = None,
    branch_from: Optional[str] = None,
) -> None:
    """One shard of α/β-guided samples (Algorithm 1); same seeds, labels and layout as the
    baseline set of `params`, so sample i pairs with baseline sample i. Each guide is
    (model, Gaussians) paths, needed only when its weight is non-zero.

    H′ of a discriminator trained at t < t_max is consulted only there (`Guide.trained_at`), so
    chains that differ only in β are the same computation until the first step below t_max.
    `keep_state_below` = t_max keeps this shard's states there; `branch_from` (a file that kept
    them, of the same loss, α, τ and Σ_θ) continues from them: the last few steps instead of the
    whole chain, the same samples (`sampling.sample_shard`).

    Args:
        params: the sampling section (seeds, shards, steps, method, batch size).
        cell: the guidance: α, β, loss, τ and Σ_θ.
        model: the trained DDPM.
        classifier: the classifier's weights and Gaussians: needed when α ≠ 0.
        discriminator: the discriminator H′'s weights and Gaussians: needed when β ≠ 0.
        shard: which shard to draw.
        out: the shard's sample file.
        device: where to run (auto: CUDA when present).
        extra_metadata: more meta_ entries for the sample file.
        keep_state_below: also keep each chain's state before its first step with t below this.
        branch_from: continue the chains kept in this sample file instead of sampling them whole.
    """
    from lowdensity.core.training import memory_format
    from lowdensity.runtime import select_device
    from lowdensity.stages.sampling import read_branch, sample_shard

    for weight, name, paths in ((cell.alpha, "α", classifier), (cell.beta, "β", discriminator)):
        if weight and not paths:
            raise ValueError(
                f"{name} = {weight} needs the {'classifier' if name == 'α' else 'discriminator'}'s model and Gaussians"
            )
    dev = select_device(device)
    classifier_guide = load_guide(classifier, dev) if cell.alpha else None
    discriminator_guide = load_guide(discriminator, dev) if cell.beta else None
    for guide in (classifier_guide, discriminator_guide):
        if guide is not None:
            memory_format(guide.model, params.get("channels_last", False))
    metadata = {**cell.metadata(), **(extra_metadata or {})}
    branch = read_branch(branch_from) if branch_from else None
    if branch_from and branch is None:
        logging.getLogger("lowdensity").info("%s keeps no branch states: sampling the whole chain", branch_from)
    if branch is not None:
        check_branch_source(branch, branch_from, metadata, discriminator_guide)
    sample_shard(
        params,
        model,
        shard,
        out,
        device,
        cond_fn_for=lambda y, seeds, diffusion: make_cond_fn(y, cell, classifier_guide, discriminator_guide),
        metadata=metadata,
        keep_state_below=keep_state_below,
        branch=branch,
    )


def check_branch_source(branch: dict, path: str, metadata: dict, discriminator: Optional[Guide]) -> None:
    """A chain may continue from another's kept states only if every step above them computed the
    same thing: the same loss, α, τ and Σ_θ (β may differ: H′ is consulted only below where they
    were kept, which must be where this discriminator's trained timesteps end)."""

    def same(key: str) -> bool:
        if f"meta_{key}" not in branch:
            return False
        there, here = branch[f"meta_{key}"].item(), metadata[key]
        return float(there) == float(here) if key in ("alpha", "tau") else str(there) == str(here)

    differ = [k for k in ("alpha", "tau", "loss", "step_scale") if not same(k)]
    if differ:
        values = ", ".join(f"{k} = {branch.get('meta_' + k)} there, {metadata[k]} here" for k in differ)
        raise ValueError(
            f"{path} was sampled with other {', '.join(differ)} ({values}): "
            "its chains cannot be continued with these weights"
        )
    if discriminator is not None and discriminator.t_max != int(branch["branch_below"]):
        raise ValueError(
            f"{path} kept its states below t = {int(branch['branch_below'])}, but the discriminator is consulted "
            f"below t = {discriminator.t_max}: continuing from there would skip steps where β acts"
        )
