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

from .classifier import embed_images, load_encoder, load_gaussians
from .data import load_split
from .evaluation import load_image_set
from .ddpm import select_device
from .io import atomic_to_csv
from .knn import improved_precision_recall, knn_radii


def set_name(path: str) -> str:
    return Path(path).stem


def set_description(path: str) -> dict:
    """Sampler, guidance loss and weights of a sample file (baseline: α = β = 0)."""
    with np.load(path, allow_pickle=False) as f:
        if "meta_alpha" not in f:
            return {"sampler": "baseline", "loss": "none", "alpha": 0.0, "beta": 0.0}
        return {"sampler": "guided", "loss": str(f["meta_loss"]), "alpha": float(f["meta_alpha"]), "beta": float(f["meta_beta"])}


def score_images(model, gaussians, images: np.ndarray, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    emb, logits = embed_images(model, images, 0, with_logits=True)
    hardness = gaussians.hardness_of_label(torch.from_numpy(emb), torch.from_numpy(labels)).numpy()
    frame = pd.DataFrame({"index": np.arange(len(labels)), "label": labels, "hardness": hardness,
                          "predicted": logits.argmax(1), "correct": logits.argmax(1) == labels})
    return frame, emb


def score_sample_sets(params: dict, classifier_path: str, gaussians_path: str, train_path: str, val_path: str,
                      set_paths: list[str], hardness_csv: str, precision_csv: str, device: str = "auto") -> None:
    """Hardness and classifier accuracy of every sample in `set_paths` and of the real
    validation images; precision/recall (k from params['precision']) of every set against a
    stratified subset of the training images."""
    dev = select_device(device)
    model, _ = load_encoder(classifier_path, dev)
    gaussians = load_gaussians(gaussians_path)
    real_images, _ = load_image_set("reference", train_path, params["precision"]["num_real"])
    real_emb = embed_images(model, real_images, 0)
    real_radii = knn_radii(real_emb, params["precision"]["k"])
    val = load_split(val_path)
    frame, _ = score_images(model, gaussians, val.images, val.labels)
    tables = [frame.assign(set="real", sampler="real", loss="none", alpha=np.nan, beta=np.nan, seed=-1)]
    precision_rows = []
    for path in set_paths:
        with np.load(path, allow_pickle=False) as f:
            images, labels, seeds = f["images"], f["labels"], f["seeds"]
        frame, emb = score_images(model, gaussians, images, labels)
        description = set_description(path)
        tables.append(frame.assign(set=set_name(path), seed=seeds, **description))
        pr = improved_precision_recall(real_emb, emb, k=params["precision"]["k"], real_radii=real_radii)
        precision_rows.append({"set": set_name(path), **description, **pr, "k": params["precision"]["k"],
                               "num_real": len(real_images), "num_fake": len(labels), "space": "classifier embedding (t = 0)"})
    atomic_to_csv(pd.concat(tables, ignore_index=True), hardness_csv)
    atomic_to_csv(pd.DataFrame(precision_rows), precision_csv)
