"""Stages that draw, gather and show sample sets; `sample_shard` is the machinery every sampler's
stage shares (seeds, labels, shards, branch states, the written file)."""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lowdensity.core.diffusion import CondFn, GaussianDiffusion
from lowdensity.core.training import compute_precision, memory_format
from lowdensity.data import check_images, image_shape, read_sample_set
from lowdensity.guidance.sampling import balanced_labels, generate
from lowdensity.io import atomic_path, atomic_savez, read_npz
from lowdensity.layout import shard_indices
from lowdensity.networks.ddpm import load_ddpm, sampling_diffusion
from lowdensity.runtime import device_description, resolve_precision, select_device


def sample_shard(
    sampling_cfg: dict,
    model_path: str,
    shard: int,
    out_path: str,
    device: str = "auto",
    *,
    cond_fn_for: Optional[Callable[[torch.Tensor, np.ndarray, GaussianDiffusion], CondFn]] = None,
    metadata: Optional[dict] = None,
    init_scale: float = 1.0,
    skip: int = 0,
    model: Optional[tuple] = None,
    keep_state_below: Optional[int] = None,
    branch: Optional[dict] = None,
) -> None:
    """Draw shard `shard` of the sample set described by `sampling_cfg` and write it atomically.

    Keys used: num_samples, shards, seed, steps, method ('ddpm' ancestral or 'ddim'), eta,
    batch_size, and optionally precision ('fp32' | 'bf16' autocast of the networks | 'auto') and
    channels_last. `metadata` (scalars, e.g. the guidance weights) is stored alongside.
    `init_scale`, `skip`: see `generate`; `model`: the (network, metadata) already loaded from
    `model_path` by a caller that needs it too.

    `keep_state_below` = t_max also stores each chain's state before the first step whose
    timestep is below t_max (`branch_state`, at `branch_index`), where a chain that differs
    from this one only in a guide consulted at t < t_max (H′) branches off. `branch` (a file
    with such states, read by `read_branch`) continues those chains from there instead of
    sampling the steps above again: the same samples bit for bit, since those steps are the same
    computation (tests/test_guidance.py). Its seconds add the source's per image for the prefix.
    """
    dev = select_device(device)
    model, meta = model or load_ddpm(model_path, dev)
    memory_format(model, sampling_cfg.get("channels_last", False))
    diffusion = sampling_diffusion(meta["diffusion"], sampling_cfg["steps"])
    indices = shard_indices(sampling_cfg["num_samples"], sampling_cfg["shards"], shard)
    labels = balanced_labels(indices, len(meta["class_names"]))
    seeds = sampling_cfg["seed"] + indices
    arch = meta["arch"]
    shape = (arch["in_channels"], arch["image_size"], arch["image_size"])
    keep_before = None if keep_state_below is None else diffusion.branch_index(keep_state_below)
    if keep_before == diffusion.num_timesteps - 1:
        keep_before = None  # the branch would start at the top: nothing above it to share
    start_states, prefix_seconds = None, 0.0
    if branch is not None:
        if skip or init_scale != 1.0:
            raise ValueError("a continued chain starts from its kept states, not from a skipped or scaled start")
        start_states = branch_states(branch, diffusion, indices, labels, seeds)
        skip = diffusion.num_timesteps - 1 - int(branch["branch_index"])
        prefix_seconds = float(branch["seconds_per_image"]) * len(indices)
    precision = resolve_precision(sampling_cfg.get("precision", "fp32"), dev)
    start = time.perf_counter() - prefix_seconds
    with compute_precision(dev, precision):
        result = generate(
            model,
            diffusion,
            shape,
            labels,
            seeds,
            sampling_cfg["batch_size"],
            method=sampling_cfg["method"],
            eta=sampling_cfg["eta"],
            cond_fn_for=cond_fn_for,
            progress=False,
            init_scale=init_scale,
            skip=skip,
            start_states=start_states,
            keep_before=keep_before,
        )
    images, arrays = result, {}
    if keep_before is not None:
        images, states = result
        arrays = {
            "branch_state": states,
            "branch_index": np.int64(keep_before),
            "branch_timestep": np.int64(diffusion.timestep_map[keep_before]),
            "branch_below": np.int64(keep_state_below),
            "branch_chain_steps": np.int64(diffusion.num_timesteps),
        }
    write_shard(
        out_path,
        images,
        labels,
        seeds,
        indices,
        meta["class_names"],
        dev,
        start,
        metadata=metadata,
        arrays=arrays,
        precision=precision,
    )


def read_branch(path: str) -> Optional[dict]:
    """The branch states a sample file keeps (`sample_shard`'s keep_state_below), with its seeds,
    labels, indices, seconds per image and metadata; None if it keeps none."""
    data = read_sample_set(path, None, keys=None)
    return data if "branch_state" in data else None


def branch_states(
    branch: dict, diffusion: GaussianDiffusion, indices: np.ndarray, labels: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """The kept states of samples `indices`, after checking that they come from the same chain:
    the same respacing and step, and each sample's seed and label."""
    b = int(branch["branch_index"])
    if branch["branch_state"].shape != (len(branch["indices"]), *branch["images"].shape[1:]):
        raise ValueError(
            f"the branch states {branch['branch_state'].shape} do not match the file's {len(branch['indices'])} samples"
        )
    if int(branch["branch_chain_steps"]) != diffusion.num_timesteps or int(diffusion.timestep_map[b]) != int(
        branch["branch_timestep"]
    ):
        raise ValueError(
            f"the branch states were kept at step {b} (t = {int(branch['branch_timestep'])}) of a "
            f"{int(branch['branch_chain_steps'])}-step chain, not of this {diffusion.num_timesteps}-step one"
        )
    position = {int(i): k for k, i in enumerate(branch["indices"])}
    missing = [int(i) for i in indices if int(i) not in position]
    if missing:
        raise ValueError(f"the branch states hold no state for samples {missing[:5]}{' …' if len(missing) > 5 else ''}")
    rows = np.array([position[int(i)] for i in indices], dtype=np.int64)
    if not (np.array_equal(branch["seeds"][rows], seeds) and np.array_equal(branch["labels"][rows], labels)):
        raise ValueError("the branch states come from samples of other seeds or labels")
    return np.ascontiguousarray(branch["branch_state"][rows])


def write_shard(
    out_path: str,
    images: np.ndarray,
    labels: np.ndarray,
    seeds: np.ndarray,
    indices: np.ndarray,
    class_names,
    device: torch.device,
    start: float,
    *,
    metadata: Optional[dict] = None,
    arrays: Optional[dict] = None,
    precision: str = "fp32",
) -> None:
    """Write a shard atomically with the sampler's seconds since `start` (perf_counter) on `device`
    in `precision` (named in the device column when not fp32: it sets the seconds), and any
    further `arrays`, such as kept branch states."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    atomic_savez(
        out_path,
        images=images,
        labels=labels,
        seeds=seeds,
        indices=indices,
        seconds=np.float64(seconds),
        seconds_per_image=np.float64(seconds / max(len(indices), 1)),
        device=np.asarray(device_description(device) + ("" if precision == "fp32" else f", {precision}")),
        class_names=np.asarray(class_names),
        **{f"meta_{k}": np.asarray(v) for k, v in (metadata or {}).items()},
        **(arrays or {}),
    )


def gather_shards(
    shard_paths: Sequence[str],
    out_path: str,
    shape: tuple[int, int, int] | None = None,
    first: int | None = None,
    metadata: Optional[dict] = None,
) -> None:
    """Concatenate shards in sample order; checks each shard (uint8 images of the data's (C, H, W)
    = `shape`, labels, seeds and indices) and that together they hold samples 0 … N−1 once.

    With `first`, only samples 0 … first − 1 are written (the shards must hold them), and
    `metadata` replaces the shards' meta_ entries: a cell whose sampler is the set's own is the
    set's prefix (the seeds and labels of sample i do not depend on the set's size or shards).
    The prefix's seconds are its share of the shards' (their seconds per image × `first`).
    """
    parts = [read_sample_set(p, shape, keys=None) for p in shard_paths]
    if not parts:
        raise ValueError("no shards to gather")
    indices = np.concatenate([p["indices"] for p in parts])
    order = np.argsort(indices, kind="stable")
    if not np.array_equal(indices[order], np.arange(len(indices))):
        raise ValueError(f"shards {list(shard_paths)} do not hold samples 0..{len(indices) - 1} exactly once")
    if first is not None:
        if not 0 < first <= len(indices):
            raise ValueError(f"shards {list(shard_paths)} hold samples 0..{len(indices) - 1}, not the first {first}")
        order = order[:first]
    cat = {k: np.concatenate([p[k] for p in parts])[order] for k in ("images", "labels", "seeds", "indices")}
    seconds = float(sum(float(p["seconds"]) for p in parts))
    per_image = seconds / max(len(indices), 1)
    devices = sorted({str(p["device"]) for p in parts})
    meta = (
        {k: v for k, v in parts[0].items() if k.startswith("meta_")}
        if metadata is None
        else {f"meta_{k}": np.asarray(v) for k, v in metadata.items()}
    )
    atomic_savez(
        out_path,
        **cat,
        seconds=np.float64(seconds if first is None else per_image * first),
        seconds_per_image=np.float64(per_image),
        device=np.asarray("; ".join(devices)),
        class_names=parts[0]["class_names"],
        **meta,
    )


def samples_grid(
    samples_path: str, out_png: str, per_class: int = 10, title: str = "", shape: tuple[int, int, int] | None = None
) -> None:
    """A PNG with one row per class (its first `per_class` samples), labelled by class name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_npz(samples_path, ("images", "labels", "class_names"))  # a sample set or a prepared split
    check_images(samples_path, data, ("labels",), shape)
    images, labels, class_names = data["images"], data["labels"], [str(c) for c in data["class_names"]]
    fig, axes = plt.subplots(
        len(class_names), per_class, figsize=(per_class * 0.7 + 1.2, len(class_names) * 0.7 + 0.4), squeeze=False
    )
    for c, name in enumerate(class_names):
        chosen = np.flatnonzero(labels == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(chosen):
                img = images[chosen[j]].transpose(1, 2, 0)
                ax.imshow(
                    img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255, interpolation="nearest"
                )
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.99, top=0.95 if title else 0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def sample(*, params: dict, model: str, shard: int, out: str, device: str = "auto") -> None:
    """Draw one shard of baseline samples (ancestral DDPM or DDIM, per `params`).

    Args:
        params: the config's sampling section (num_samples, shards, seed, steps, method, ...).
        model: the trained DDPM (train-ddpm's model).
        shard: which of the set's `shards` to draw.
        out: the shard's sample file (.npz).
        device: where to run (auto: CUDA when present).
    """
    sample_shard(params, model, shard, out, device)


def gather(
    *, shards: list[str], out: str, data: str, first: Optional[int] = None, metadata: Optional[dict] = None
) -> None:
    """Concatenate sample shards in sample order (checked: every sample once, the data's shape).

    Args:
        shards: the shards' sample files.
        out: the gathered sample file.
        data: a prepared split: the (C, H, W) every sample must have.
        first: write only samples 0 ... first − 1 (a cell that is a set's prefix).
        metadata: the written file's meta_ entries instead of the shards' (with `first`).
    """
    gather_shards(shards, out, image_shape(data), first, metadata)


def grid(*, samples: str, out: str, data: str, per_class: int = 10, title: str = "") -> None:
    """A PNG of a sample set or prepared split: one row per class.

    Args:
        samples: a sample file or prepared split.
        out: the PNG.
        data: a prepared split: the (C, H, W) the images must have.
        per_class: images per row.
        title: the figure's title.
    """
    samples_grid(samples, out, per_class, title, image_shape(data))
