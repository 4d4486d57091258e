"""The evaluation stage: features of every image set in each evaluation space, the density
metrics of Section 4.2 (hardness, AvgkNN, LOF), precision/recall, and the memorization
search of Section 5.

Image sets: `reference` (a stratified subset of `evaluation.num_reference` training
images, or all), `real` (the held-out validation split), and every sample set. Features
are extracted once per (extractor, set) and stored as .npz with the labels; every metric
reads them. The metrics table is tidy: one row per (set, image, extractor, metric).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import image_shape, load_split, read_sample_set, stratified_subset
from .ddpm import select_device
from .density import LocalOutlierFactor, avg_knn, closest_pairs
from .gaussians import label_hardness
from .io import ArtifactError, atomic_path, atomic_save_npy, atomic_savez, atomic_to_csv, read_npy, read_npz, rebuild_hint
from .knn import improved_precision_recall, knn


def image_set_rows(set_name: str, path: str, num_reference: int | None,
                   shape: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, rows, labels of those rows) of a set: the stratified reference subset of the
    training split or the validation split (images memory-mapped: only `rows` are ever read), or
    a sample file (checked against the data's (C, H, W) = `shape`; all rows)."""
    if set_name in ("reference", "real"):
        split = load_split(path, mmap=True)
        rows = np.arange(len(split.labels))
        if set_name == "reference":
            per_class = None if num_reference is None else max(2, num_reference // len(split.class_names))
            rows = stratified_subset(split.labels, per_class, seed=0)
        return split.images, rows, split.labels[rows]
    data = read_sample_set(path, shape, keys=("images", "labels"))
    return data["images"], np.arange(len(data["labels"])), data["labels"]


def load_image_set(set_name: str, path: str, num_reference: int | None,
                   shape: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and labels of a set (see `image_set_rows`), in memory."""
    images, rows, labels = image_set_rows(set_name, path, num_reference, shape)
    return np.asarray(images[rows]), labels


EXTRACTION_CHUNK = 16_384  # images read from disk and embedded per step


def extract_features(eval_cfg: dict, extractor: str, set_name: str, images_path: str, data_path: str, out_path: str,
                     classifier_path: str | None = None, device: str = "auto") -> None:
    """Features of one image set in one space: a configured extractor, or `classifier` (the
    pipeline classifier's clean embedding f(x, 0)). A sample set must have the (C, H, W) of the
    prepared split `data_path`. Images are read and embedded `EXTRACTION_CHUNK` at a time and the
    features written into a memory-mapped .npy, so memory stays bounded at any set size."""
    dev = select_device(device)
    images, rows, labels = image_set_rows(set_name, images_path, eval_cfg["num_reference"], image_shape(data_path))
    if not len(rows):
        raise ArtifactError(f"{images_path}: the set {set_name!r} holds no images: {rebuild_hint(images_path)}")
    if extractor == "classifier":
        from .classifier import embed_images, load_encoder

        model, _ = load_encoder(classifier_path, dev)
        embed = lambda batch: embed_images(model, batch, 0)  # noqa: E731
    else:
        from .features import load_extractor

        embed = load_extractor(next(e for e in eval_cfg["extractors"] if e["name"] == extractor), dev)
    atomic_save_npy(labels_path(out_path), np.asarray(labels, dtype=np.int64))
    with atomic_path(out_path, suffix=".npy") as tmp:
        out = None
        for start in range(0, len(rows), EXTRACTION_CHUNK):
            feats = embed(np.asarray(images[rows[start:start + EXTRACTION_CHUNK]]))
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), feats.shape[1]))
            out[start:start + len(feats)] = feats
        out.flush()
        del out


def labels_path(features_path: str) -> str:
    """The labels beside a features file: `{set}.npy` → `{set}.labels.npy`."""
    return str(features_path)[:-len(".npy")] + ".labels.npy"


def save_features(path: str, features: np.ndarray, labels: np.ndarray) -> None:
    """Features as float32 .npy (memory-mappable) and their labels beside them."""
    atomic_save_npy(labels_path(path), np.asarray(labels, dtype=np.int64))
    atomic_save_npy(path, np.asarray(features, dtype=np.float32))


FINITE_CHECK_ROWS = 65_536  # rows checked at a time, so that a memory-mapped paper-scale set is never read whole


def load_features(path: str, like: dict | None = None) -> dict:
    """A set's features, memory-mapped (rows are read when a search uses them), and its labels,
    checked: float32 (N, D) with N ≥ 1 finite rows, N non-negative integer labels, and, given the
    reference's features `like`, its width D and only classes the reference holds. A damaged file fails naming it and its rebuild."""
    features, labels = read_npy(path, mmap=True), read_npy(labels_path(path), made_by="extract_features")
    problem = None
    if features.dtype != np.float32 or features.ndim != 2 or len(features) != len(labels):
        problem = f"features {features.dtype} {features.shape} with {len(labels)} labels; expected float32 (N, D) with N labels"
    elif len(features) == 0:
        problem = "no rows"
    elif like is not None and features.shape[1] != like["features"].shape[1]:
        problem = f"features of width {features.shape[1]}, but the reference's have {like['features'].shape[1]}"
    elif not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        problem = f"labels of dtype {labels.dtype} from {labels.min()}; expected non-negative class indices"
    elif like is not None and not np.isin(labels, like["labels"]).all():
        problem = f"labels {np.setdiff1d(labels, like['labels']).tolist()} that the reference has no images of"
    else:
        for start in range(0, len(features), FINITE_CHECK_ROWS):
            finite = np.isfinite(features[start:start + FINITE_CHECK_ROWS]).all(axis=1)
            if not finite.all():
                problem = f"row {start + int(np.flatnonzero(~finite)[0])} holds NaN or infinite values"
                break
    if problem:
        raise ArtifactError(f"{path}: {problem}: {rebuild_hint(path)}")
    return {"features": features, "labels": labels}


def reference_neighbours(eval_cfg: dict, reference_path: str, out_path: str, device: str = "auto") -> None:
    """The reference's own k nearest other references (k = max(lof_k, precision_k)): LOF's
    k-distances and lrd and the precision balls of every set's metrics, searched once on `device`."""
    ref = load_features(reference_path)
    k = max(eval_cfg["lof_k"], eval_cfg["precision_k"])
    distances, indices = knn(ref["features"], ref["features"], k, exclude_self=True, device=select_device(device))
    atomic_savez(out_path, distances=distances, indices=indices, k=k)


def load_reference_neighbours(path: str, reference: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's own neighbours (`reference_neighbours`), checked against the reference and k."""
    neighbours = read_npz(path, ("distances", "indices"))
    if neighbours["distances"].shape[0] != len(reference["labels"]) or neighbours["distances"].shape[1] < k:
        raise ArtifactError(f"{path} holds {neighbours['distances'].shape} neighbours, not {len(reference['labels'])} × ≥ {k}: "
                            f"it does not match the reference features and the configured k; {rebuild_hint(path)}")
    return neighbours["distances"], neighbours["indices"]


def reference_radii(path: str, reference: dict, k: int) -> np.ndarray:
    """The precision balls: each reference's distance to its k-th nearest other reference (stored)."""
    return load_reference_neighbours(path, reference, k)[0][:, k - 1]


def set_density_metrics(eval_cfg: dict, extractor: str, reference_path: str, neighbours_path: str, set_name: str,
                        set_path: str, metrics_csv: str, summary_csv: str, device: str = "auto") -> None:
    """One image set in one space. Per image: hardness (class Gaussians fitted on the reference
    features, Eq. 3), AvgkNN (k = knn_k) and LOF (k = lof_k) against the reference; for the set:
    improved precision and recall (k = precision_k) and the medians. The reference side (its own
    neighbours) comes from `reference_neighbours`, so each set is one independent job."""
    dev = select_device(device)
    ref = load_features(reference_path)
    own = load_reference_neighbours(neighbours_path, ref, max(eval_cfg["lof_k"], eval_cfg["precision_k"]))
    lof = LocalOutlierFactor(ref["features"], k=eval_cfg["lof_k"], neighbours=own)
    radii = own[0][:, eval_cfg["precision_k"] - 1]
    data = load_features(set_path, like=ref)
    near = knn(data["features"], ref["features"], max(eval_cfg["knn_k"], eval_cfg["lof_k"]), device=dev)  # one search, both metrics
    values = {
        "hardness": label_hardness(ref["features"], ref["labels"], data["features"], data["labels"]),
        "avgknn": avg_knn(data["features"], ref["features"], k=eval_cfg["knn_k"], neighbours=near),
        "lof": lof.score(data["features"], neighbours=near),
    }
    rows = [pd.DataFrame({"set": set_name, "index": np.arange(len(v)), "label": data["labels"], "extractor": extractor,
                          "metric": metric, "value": v}) for metric, v in values.items()]
    pr = improved_precision_recall(ref["features"], data["features"], k=eval_cfg["precision_k"], real_radii=radii, device=dev)
    summary = {"set": set_name, "extractor": extractor, **pr, "k": eval_cfg["precision_k"], "n": len(data["labels"]),
               "num_reference": len(ref["labels"]), **{f"median_{m}": float(np.median(v)) for m, v in values.items()}}
    atomic_to_csv(pd.concat(rows, ignore_index=True), metrics_csv)
    atomic_to_csv(pd.DataFrame([summary]), summary_csv)


def read_metrics(paths: list[str]) -> pd.DataFrame:
    """The tidy per-image metrics of one or more (space, set) files, as one table."""
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def collect_metrics(metrics_paths: list[str], summary_paths: list[str], metrics_csv: str, sets_csv: str) -> None:
    """The per-(space, set) files of one space as the two tables users read: every image's
    metrics, and one summary row per set (in the given order)."""
    atomic_to_csv(read_metrics(metrics_paths), metrics_csv)
    atomic_to_csv(read_metrics(summary_paths), sets_csv)


def memorization(eval_cfg: dict, reference_path: str, guided_path: str, real_path: str, summary_csv: str,
                 pairs_csv: str, neighbours_csv: str, device: str = "auto") -> None:
    """Section 5: nearest-neighbour distance from every guided sample and every held-out real
    image to the training reference (means in `summary_csv`); the globally closest
    guided–training pairs; each guided sample's `neighbours` nearest training images with
    their labels, and the fraction whose nearest neighbour carries another label."""
    cfg = eval_cfg["memorization"]
    dev = select_device(device)
    ref = load_features(reference_path)
    guided, real = load_features(guided_path, like=ref), load_features(real_path, like=ref)
    d_guided, idx = knn(guided["features"], ref["features"], min(max(cfg["neighbours"], cfg["top_pairs"]), len(ref["labels"])),
                        device=dev)
    d_real, idx_real = knn(real["features"], ref["features"], 1, device=dev)
    summary = []
    for name, dist, nearest, labels in [("guided", d_guided[:, 0], idx[:, 0], guided["labels"]),
                                        ("real", d_real[:, 0], idx_real[:, 0], real["labels"])]:
        summary.append({"set": name, "mean_nn_distance": float(dist.mean()), "median_nn_distance": float(np.median(dist)),
                        "fraction_nn_other_label": float((ref["labels"][nearest] != labels).mean()), "n": len(dist)})
    atomic_to_csv(pd.DataFrame(summary), summary_csv)
    dist, qi, ri = closest_pairs(guided["features"], ref["features"], cfg["top_pairs"], neighbours=(d_guided, idx))
    d_guided, idx = d_guided[:, :cfg["neighbours"]], idx[:, :cfg["neighbours"]]
    atomic_to_csv(pd.DataFrame({"rank": np.arange(len(dist)), "distance": dist, "guided_index": qi, "reference_index": ri,
                                "guided_label": guided["labels"][qi], "reference_label": ref["labels"][ri]}), pairs_csv)
    atomic_to_csv(pd.DataFrame({
        "guided_index": np.repeat(np.arange(len(idx)), idx.shape[1]), "rank": np.tile(np.arange(idx.shape[1]), len(idx)),
        "reference_index": idx.ravel(), "distance": d_guided.ravel(), "guided_label": np.repeat(guided["labels"], idx.shape[1]),
        "reference_label": ref["labels"][idx].ravel()}), neighbours_csv)


def fidelity_vs_steps(eval_cfg: dict, reference_path: str, neighbours_path: str, set_paths: dict[tuple[str, int], str],
                      out_csv: str, device: str = "auto") -> None:
    """Appendix A.7: improved precision (and recall) of baseline and guided DDIM samples for each
    number of sampling steps, against the training reference (its balls from `reference_neighbours`)."""
    dev = select_device(device)
    ref = load_features(reference_path)
    radii = reference_radii(neighbours_path, ref, eval_cfg["precision_k"])
    rows = []
    for (sampler, steps), path in sorted(set_paths.items()):
        data = load_features(path, like=ref)
        pr = improved_precision_recall(ref["features"], data["features"], k=eval_cfg["precision_k"], real_radii=radii, device=dev)
        rows.append({"sampler": sampler, "steps": steps, **pr, "k": eval_cfg["precision_k"], "n": len(data["labels"])})
    atomic_to_csv(pd.DataFrame(rows), out_csv)
