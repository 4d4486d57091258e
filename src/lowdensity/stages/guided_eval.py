"""Scores of the sample sets in the classifier's space: hardness (Eq. 3), the classifier's
prediction, and improved precision/recall against real training images (figure 4).

Every sample set is scored on clean images (t = 0, Gaussian bucket 0). One tidy row per
sample goes to the hardness table, one row per set to the precision table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lowdensity.data import load_split, read_sample_set
from lowdensity.guidance.classifier import embed_images, load_encoder, load_gaussians
from lowdensity.io import atomic_to_csv, read_npz
from lowdensity.metrics.intervals import centred_interval, fidelity_and_diversity
from lowdensity.metrics.knn import improved_precision_recall, knn_radii
from lowdensity.runtime import select_device
from lowdensity.stages.evaluation import load_image_set


def set_name(path: str) -> str:
    return Path(path).stem


def set_description(path: str) -> dict:
    """Sampler, guidance loss and weights of a sample file (baseline: α = β = 0)."""
    f = read_npz(path, (), optional=("meta_alpha", "meta_beta", "meta_loss"))
    if "meta_alpha" not in f:
        return {"sampler": "baseline", "loss": "none", "alpha": 0.0, "beta": 0.0}
    return {
        "sampler": "guided",
        "loss": str(f["meta_loss"]),
        "alpha": float(f["meta_alpha"]),
        "beta": float(f["meta_beta"]),
    }


def score_images(model, gaussians, images: np.ndarray, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    emb, logits = embed_images(model, images, 0, with_logits=True)
    hardness = gaussians.hardness_of_label(torch.from_numpy(emb), torch.from_numpy(labels)).numpy()
    frame = pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "label": labels,
            "hardness": hardness,
            "predicted": logits.argmax(1),
            "correct": logits.argmax(1) == labels,
        }
    )
    return frame, emb


def score_sample_sets(
    *,
    params: dict,
    classifier: str,
    gaussians: str,
    train: str,
    val: str,
    sets: list[str],
    hardness_csv: str,
    precision_csv: str,
    device: str = "auto",
) -> None:
    """Hardness and classifier accuracy of every sample in `sets` and of the real
    validation images; precision/recall (k from params['precision']) of every set against a
    stratified subset of the training images.

    Args:
        params: {"precision": {"k": ..., "num_real": ...}} of the guidance section.
        classifier: the classifier.
        gaussians: its class Gaussians.
        train: the prepared training split (the precision reference).
        val: the prepared validation split (the real set).
        sets: the sample files to score.
        hardness_csv: hardness and accuracy per image (tidy).
        precision_csv: precision per set.
        device: where to run (auto: CUDA when present).
    """
    dev = select_device(device)
    model, _ = load_encoder(classifier, dev)
    class_gaussians = load_gaussians(gaussians)
    real_images, _ = load_image_set("reference", train, params["precision"]["num_real"])
    real_emb = embed_images(model, real_images, 0)
    real_radii = knn_radii(real_emb, params["precision"]["k"])
    val_split = load_split(val)
    frame, _ = score_images(model, class_gaussians, val_split.images, val_split.labels)
    shape = val_split.images.shape[1:]
    tables = [frame.assign(set="real", sampler="real", loss="none", alpha=np.nan, beta=np.nan, seed=-1)]
    precision_rows = []
    for path in sets:
        data = read_sample_set(path, shape)
        images, labels, seeds = data["images"], data["labels"], data["seeds"]
        frame, emb = score_images(model, class_gaussians, images, labels)
        description = set_description(path)
        tables.append(frame.assign(set=set_name(path), seed=seeds, **description))
        pr = improved_precision_recall(real_emb, emb, k=params["precision"]["k"], real_radii=real_radii)
        precision_rows.append(
            {
                "set": set_name(path),
                **description,
                **pr,
                "k": params["precision"]["k"],
                "num_real": len(real_images),
                "num_fake": len(labels),
                "space": "classifier embedding (t = 0)",
            }
        )
    atomic_to_csv(pd.concat(tables, ignore_index=True), hardness_csv)
    atomic_to_csv(pd.DataFrame(precision_rows), precision_csv)


def fidelity_with_intervals(
    reference: np.ndarray,
    samples: np.ndarray,
    k: int,
    prd_cfg: dict,
    intervals: dict,
    *,
    reference_radii: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """`fidelity_and_diversity`'s rows (improved precision — named `improved_precision` here —,
    recall, density, coverage, Vendi scores) and PRD's F_1/8 (precision) and F_8 (recall)
    (Sajjadi et al.) of `samples` against `reference` features, with centred bootstrap intervals
    over resampled samples (`intervals`: bootstrap, vendi_bootstrap, level, seed, vendi_orders);
    PRD's from one clustering per replicate, so its interval holds both the sampling and the
    clustering spread."""
    from lowdensity.metrics.prd import max_f_beta, one_clustering, prd

    rows = fidelity_and_diversity(
        reference, samples, k=k, intervals=intervals, real_radii=reference_radii, device=device
    )
    rows = [{**row, "metric": "improved_precision" if row["metric"] == "precision" else row["metric"]} for row in rows]
    seed, level = intervals["seed"], intervals["level"]
    rng = np.random.default_rng(seed)
    curve = prd(samples, reference, prd_cfg["num_clusters"], prd_cfg["num_angles"], prd_cfg["num_runs"], seed)
    boot_f = []
    for b in range(intervals["bootstrap"]):
        resampled = samples[rng.integers(0, len(samples), len(samples))]
        p, r = one_clustering(
            resampled, reference, prd_cfg["num_clusters"], prd_cfg["num_angles"], rng, seed + 1000 + b
        )
        boot_f.append((max_f_beta(p, r, 1 / 8), max_f_beta(p, r, 8)))
    boot_f = np.asarray(boot_f)
    for j, (metric, key) in enumerate((("prd_f1/8", "f_1/8"), ("prd_f8", "f_8"))):
        low, high = centred_interval(curve[key], boot_f[:, j], level)
        rows.append({"metric": metric, "value": curve[key], "low": low, "high": high})
    return [
        {
            **row,
            "n": len(samples),
            "num_reference": len(reference),
            "bootstrap": intervals["vendi_bootstrap" if row["metric"].startswith("vendi") else "bootstrap"],
            "level": level,
        }
        for row in rows
    ]


def fig4b_fidelity(
    *,
    params: dict,
    references: dict[str, str],
    neighbours: dict[str, str],
    cells: dict[str, dict[str, str]],
    out: str,
    device: str = "auto",
) -> None:
    """Fidelity of figure 4b's cells (α fixed, β varied) in every feature space: `references`
    maps a space to its reference features, `neighbours` to the reference's own neighbours
    (`reference_neighbours`, for the balls), `cells` a space to {β: the cell's features}.

    Args:
        params: figure 4b's α, PRD settings and precision_k, and `intervals` (figure 4b's bootstrap,
            level and seed, with the evaluation's Vendi orders and replicates).
        references: feature space → the reference's features.
        neighbours: feature space → the reference's own neighbours.
        cells: feature space → β (as written in the cell's name) → the cell's features.
        out: the fidelity table (CSV).
        device: where the ball tests run (auto: CUDA when present).
    """
    from lowdensity.stages.evaluation import load_features, reference_radii

    dev = select_device(device)
    rows = []
    k = params["precision_k"]
    for space, reference_path in references.items():
        reference = load_features(reference_path)
        radii = reference_radii(neighbours[space], reference, k)
        for beta, path in sorted((float(b), p) for b, p in cells[space].items()):
            samples = np.array(load_features(path)["features"])
            for row in fidelity_with_intervals(
                reference["features"], samples, k, params["prd"], params["intervals"], reference_radii=radii, device=dev
            ):
                rows.append({"space": space, "alpha": params["alpha"], "beta": beta, **row})
    atomic_to_csv(pd.DataFrame(rows), out)
