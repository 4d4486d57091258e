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
import torch

from .data import load_split, stratified_subset
from .ddpm import select_device
from .density import LocalOutlierFactor, avg_knn, closest_pairs
from .gaussians import ClassGaussians
from .io import atomic_savez, atomic_to_csv
from .knn import improved_precision_recall, knn, knn_radii


def load_image_set(set_name: str, path: str, num_reference: int | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and labels of a set: the reference subset of the training split, the
    validation split, or a sample file."""
    if set_name == "reference":
        split = load_split(path)
        per_class = None if num_reference is None else max(2, num_reference // len(split.class_names))
        keep = stratified_subset(split.labels, per_class, seed=0)
        return split.images[keep], split.labels[keep]
    if set_name == "real":
        split = load_split(path)
        return split.images, split.labels
    with np.load(path, allow_pickle=False) as f:
        return f["images"], f["labels"]


def extract_features(eval_cfg: dict, extractor: str, set_name: str, images_path: str, out_path: str,
                     classifier_path: str | None = None, device: str = "auto") -> None:
    """Features of one image set in one space: a configured extractor, or `classifier` (the
    pipeline classifier's clean embedding f(x, 0))."""
    dev = select_device(device)
    images, labels = load_image_set(set_name, images_path, eval_cfg["num_reference"])
    if extractor == "classifier":
        from .classifier import embed_images, load_encoder

        model, _ = load_encoder(classifier_path, dev)
        feats = embed_images(model, images, 0)
    else:
        from .features import load_extractor

        spec = next(e for e in eval_cfg["extractors"] if e["name"] == extractor)
        feats = load_extractor(spec, dev)(images)
    atomic_savez(out_path, features=feats.astype(np.float32), labels=labels)


def _load_features(path: str) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("features", "labels")}


def density_metrics(eval_cfg: dict, extractor: str, reference_path: str, set_paths: dict[str, str], metrics_csv: str,
                    sets_csv: str) -> None:
    """Per image: hardness (class Gaussians refitted on the reference features, Eq. 3),
    AvgkNN (k = knn_k) and LOF (k = lof_k) against the reference; per set: improved
    precision and recall (k = precision_k)."""
    ref = _load_features(reference_path)
    classes = int(ref["labels"].max()) + 1
    gaussians, _ = ClassGaussians.fit(ref["features"], ref["labels"], classes, "ledoit_wolf")
    # the reference's own neighbours, once: LOF's k-distances and lrd, and the precision balls
    own = knn(ref["features"], ref["features"], max(eval_cfg["lof_k"], eval_cfg["precision_k"]), exclude_self=True)
    lof = LocalOutlierFactor(ref["features"], k=eval_cfg["lof_k"], neighbours=own)
    radii = own[0][:, eval_cfg["precision_k"] - 1]
    rows, set_rows = [], []
    for name, path in set_paths.items():
        data = _load_features(path)
        feats = torch.from_numpy(data["features"])
        near = knn(data["features"], ref["features"], max(eval_cfg["knn_k"], eval_cfg["lof_k"]))  # one search, both metrics
        values = {
            "hardness": gaussians.hardness_of_label(feats, torch.from_numpy(data["labels"])).numpy(),
            "avgknn": avg_knn(data["features"], ref["features"], k=eval_cfg["knn_k"], neighbours=near),
            "lof": lof.score(data["features"], neighbours=near),
        }
        for metric, v in values.items():
            rows.append(pd.DataFrame({"set": name, "index": np.arange(len(v)), "label": data["labels"], "extractor": extractor,
                                      "metric": metric, "value": v}))
        pr = improved_precision_recall(ref["features"], data["features"], k=eval_cfg["precision_k"], real_radii=radii)
        set_rows.append({"set": name, "extractor": extractor, **pr, "k": eval_cfg["precision_k"], "n": len(data["labels"]),
                         "num_reference": len(ref["labels"]),
                         **{f"median_{m}": float(np.median(v)) for m, v in values.items()}})
    atomic_to_csv(pd.concat(rows, ignore_index=True), metrics_csv)
    atomic_to_csv(pd.DataFrame(set_rows), sets_csv)


def memorization(eval_cfg: dict, reference_path: str, guided_path: str, real_path: str, summary_csv: str,
                 pairs_csv: str, neighbours_csv: str) -> None:
    """Section 5: nearest-neighbour distance from every guided sample and every held-out real
    image to the training reference (means in `summary_csv`); the globally closest
    guided–training pairs; each guided sample's `neighbours` nearest training images with
    their labels, and the fraction whose nearest neighbour carries another label."""
    cfg = eval_cfg["memorization"]
    ref, guided, real = (_load_features(p) for p in (reference_path, guided_path, real_path))
    d_guided, idx = knn(guided["features"], ref["features"], cfg["neighbours"])
    d_real, idx_real = knn(real["features"], ref["features"], 1)
    summary = []
    for name, dist, nearest, labels in [("guided", d_guided[:, 0], idx[:, 0], guided["labels"]),
                                        ("real", d_real[:, 0], idx_real[:, 0], real["labels"])]:
        summary.append({"set": name, "mean_nn_distance": float(dist.mean()), "median_nn_distance": float(np.median(dist)),
                        "fraction_nn_other_label": float((ref["labels"][nearest] != labels).mean()), "n": len(dist)})
    atomic_to_csv(pd.DataFrame(summary), summary_csv)
    dist, qi, ri = closest_pairs(guided["features"], ref["features"], cfg["top_pairs"])
    atomic_to_csv(pd.DataFrame({"rank": np.arange(len(dist)), "distance": dist, "guided_index": qi, "reference_index": ri,
                                "guided_label": guided["labels"][qi], "reference_label": ref["labels"][ri]}), pairs_csv)
    atomic_to_csv(pd.DataFrame({
        "guided_index": np.repeat(np.arange(len(idx)), idx.shape[1]), "rank": np.tile(np.arange(idx.shape[1]), len(idx)),
        "reference_index": idx.ravel(), "distance": d_guided.ravel(), "guided_label": np.repeat(guided["labels"], idx.shape[1]),
        "reference_label": ref["labels"][idx].ravel()}), neighbours_csv)


def fidelity_vs_steps(eval_cfg: dict, reference_path: str, set_paths: dict[tuple[str, int], str], out_csv: str) -> None:
    """Appendix A.7: improved precision (and recall) of baseline and guided DDIM samples for each
    number of sampling steps, against the training reference."""
    ref = _load_features(reference_path)
    radii = knn_radii(ref["features"], eval_cfg["precision_k"])
    rows = []
    for (sampler, steps), path in sorted(set_paths.items()):
        data = _load_features(path)
        pr = improved_precision_recall(ref["features"], data["features"], k=eval_cfg["precision_k"], real_radii=radii)
        rows.append({"sampler": sampler, "steps": steps, **pr, "k": eval_cfg["precision_k"], "n": len(data["labels"])})
    atomic_to_csv(pd.DataFrame(rows), out_csv)
