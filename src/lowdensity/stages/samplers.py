"""The successors' stages: train minority guidance's noisy classifier and draw one point of any
low-density sampler's strength sweep (the paper's, Boost-and-Skip, self-guided, minority guidance)."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pandas as pd

from lowdensity.core.noise import NoiseSource
from lowdensity.data import Split, load_split, stratified_subset
from lowdensity.guidance.guided import GuidedCell
from lowdensity.guidance.minority import (
    RENOISE_SEED_OFFSET,
    SAMPLERS,
    guided_timesteps,
    make_distance,
    minority_classes,
    minority_guidance_cond_fn,
    minority_scores,
    self_guided_cond_fn,
)


def score_split(scorer, split_path: str, max_per_class: Optional[int], seed: int) -> tuple[Split, np.ndarray]:
    """The (stratified subset of the) split and the minority score of each of its images;
    `scorer(images, labels, seed)` is `minority_scores` with the networks loaded once."""
    split = load_split(split_path)
    keep = stratified_subset(split.labels, max_per_class, seed)
    split = Split(split.images[keep], split.labels[keep], split.class_names)
    return split, scorer(split.images, split.labels, seed)


def train_minority_classifier(
    *,
    params: dict,
    ddpm: str,
    classifier: Optional[str],
    data: str,
    val: str,
    model: str,
    scores: str,
    accuracy: str,
    checkpoint: str,
    device: str = "auto",
) -> None:
    """Minority scores of (a stratified subset of) the training split, their L quantile classes,
    and the noisy classifier p(l̃ | x_t) on them (the pipeline's encoder trainer, resumable);
    validation images get classes from the training images' edges for the accuracy per t.

    Args:
        params: {"samplers": {"minority_guidance": ..., "distance": ...}, "diffusion": ...}.
        ddpm: the trained DDPM.
        classifier: the pipeline's classifier (samplers.distance.kind: classifier).
        data: the prepared training split.
        val: the prepared validation split.
        model: the minority classifier's weights.
        scores: every scored image's minority score and class (CSV).
        accuracy: its accuracy per timestep (CSV).
        checkpoint: the resumable checkpoint.
        device: where to run (auto: CUDA when present).
    """
    from lowdensity.io import atomic_to_csv
    from lowdensity.networks.ddpm import load_ddpm, training_diffusion
    from lowdensity.runtime import select_device
    from lowdensity.stages.guidance import train_encoder

    cfg = params["samplers"]["minority_guidance"]
    dev = select_device(device)
    network, meta = load_ddpm(ddpm, dev)
    chain = training_diffusion(meta["diffusion"])
    distance = make_distance(params["samplers"]["distance"], classifier, dev)
    score_t = int(cfg["score_fraction"] * (chain.num_timesteps - 1))

    def scorer(images, labels, seed):
        return minority_scores(chain, network, distance, images, labels, score_t, cfg["num_draws"], seed)

    within = cfg["quantiles_within"] == "class"
    train, train_scores = score_split(scorer, data, cfg["max_per_class"], cfg["seed"])
    val_split, val_scores = score_split(scorer, val, cfg["val_per_class"], cfg["seed"] + 1)
    train_classes, edges = minority_classes(train_scores, cfg["num_classes"], train.labels if within else None)
    val_classes, _ = minority_classes(val_scores, cfg["num_classes"], val_split.labels if within else None, edges)
    names = tuple(f"minority {level}" for level in range(cfg["num_classes"]))
    atomic_to_csv(
        pd.DataFrame(
            {
                "split": ["train"] * len(train_scores) + ["val"] * len(val_scores),
                "label": np.concatenate([train.labels, val_split.labels]),
                "score": np.concatenate([train_scores, val_scores]),
                "minority_class": np.concatenate([train_classes, val_classes]),
            }
        ),
        scores,
    )
    encoder_params = {"minority_classifier": {**cfg["classifier"], "timesteps": None}, "diffusion": params["diffusion"]}
    train_encoder(
        encoder_params,
        "minority_classifier",
        train_split=Split(train.images, train_classes, names),
        val_split=Split(val_split.images, val_classes, names),
        model_path=model,
        accuracy_csv=accuracy,
        checkpoint_path=checkpoint,
        device=device,
    )


def sample_with(
    *,
    params: dict,
    sampler: Literal["baseline", "paper", "boost_and_skip", "self_guided", "minority_guidance"],
    strength: float,
    model: str,
    guides: Optional[dict[str, str]] = None,
    shard: int = 0,
    out: str,
    device: str = "auto",
) -> None:
    """One point of a low-density sampler's strength sweep (one shard of its sample set).

    The strength is the paper's α at samplers.paper.beta, Boost-and-Skip's γ, the two guided
    successors' scale, or 0 for the baseline; the seeds, labels and shards are those of
    `params['sampling']` (the sweep's num_samples), so sample i pairs with baseline sample i.

    Args:
        params: {"sampling": ..., "samplers": {SAMPLER: ...}, "guidance": ..., "diffusion": ...}.
        sampler: which sampler.
        strength: its strength at this point.
        model: the trained DDPM.
        guides: the guides the sampler reads, name → path (e.g. classifier_model, minority_model).
        shard: which shard of the set to draw.
        out: the point's sample file.
        device: where to run (auto: CUDA when present).
    """
    guides = guides or {}
    from lowdensity.networks.ddpm import load_ddpm, training_diffusion
    from lowdensity.runtime import select_device
    from lowdensity.stages.guidance import GuidePaths, sample_guided_shard
    from lowdensity.stages.sampling import sample_shard

    sampling, cfg = params["sampling"], params["samplers"]
    dev = select_device(device)
    metadata = {"sampler": sampler, "strength": strength}
    if sampler == "baseline":
        return sample_shard(sampling, model, shard, out, device, metadata=metadata)
    if sampler == "paper":
        g = params["guidance"]
        pair = {
            name: GuidePaths(guides[f"{name}_model"], guides[f"{name}_gaussians"])
            if f"{name}_model" in guides
            else None
            for name in ("classifier", "discriminator")
        }  # a guide of zero weight is not given
        return sample_guided_shard(
            params=sampling,
            cell=GuidedCell(
                alpha=strength,
                beta=cfg["paper"]["beta"],
                loss=g["loss"],
                tau=g["tau"],
                step_scale=g["step_scale"],
                beta_form=g["beta_form"],
            ),
            model=model,
            classifier=pair["classifier"],
            discriminator=pair["discriminator"],
            shard=shard,
            out=out,
            device=device,
            extra_metadata=metadata,
        )
    if sampler == "boost_and_skip":
        return sample_shard(
            sampling,
            model,
            shard,
            out,
            device,
            metadata={**metadata, "skip": cfg[sampler]["skip"]},
            init_scale=strength,
            skip=cfg[sampler]["skip"],
        )
    if sampler not in ("self_guided", "minority_guidance"):
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    network, meta = load_ddpm(model, dev)
    if sampler == "self_guided":
        sg = cfg["self_guided"]
        chain = training_diffusion(meta["diffusion"])
        distance = make_distance(cfg["distance"], guides.get("classifier_model"), dev)
        renoise_t = int(sg["renoise_fraction"] * (chain.num_timesteps - 1))

        def cond_fn_for(y, seeds, diffusion):
            kwargs = {"y": y} if network.num_classes else {}
            return self_guided_cond_fn(
                chain,
                network,
                distance,
                kwargs,
                strength,
                renoise_t,
                guided_timesteps(diffusion.timestep_map, sg["every"]),
                NoiseSource([int(s) + RENOISE_SEED_OFFSET for s in seeds]),
            )
    else:
        from lowdensity.guidance.classifier import load_encoder

        classifier, state = load_encoder(guides["minority_model"], dev)
        target = len(state["class_names"]) - 1

        def cond_fn_for(y, seeds, diffusion):
            return minority_guidance_cond_fn(classifier, target, strength)

    return sample_shard(
        sampling, model, shard, out, device, cond_fn_for=cond_fn_for, metadata=metadata, model=(network, meta)
    )
