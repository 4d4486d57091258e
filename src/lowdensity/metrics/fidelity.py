"""FID and improved precision/recall by torch-fidelity's metric code, in our evaluation spaces, and
our own Fréchet distance of two feature sets (the samplers' table and the fidelity study).

torch-fidelity's own Inception weights cannot be downloaded here, so the features are those
`extract_features` stored for each configured extractor (every image is embedded once, for
every metric); torch-fidelity computes the Fréchet distance and the k-NN precision/recall
from them: an implementation of the metrics' arithmetic independent of ours (`density_metrics`
computes precision/recall too). The FID is reported as `fid_<extractor>`, so nobody takes it
for the Inception FID of other papers.
"""

from __future__ import annotations

import numpy as np
import torch


def fidelity(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int,
    extractor: str,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """FID and improved precision/recall (k-NN balls, k = `k`) of `fake_features` against
    `real_features`, by torch-fidelity's functions (as its `calculate_metrics` with
    `save_cpu_ram=True` calls them after extracting the features); the k-NN distances on `device`."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    real, fake = (
        torch.from_numpy(np.array(real_features)),
        torch.from_numpy(np.array(fake_features)),
    )  # in memory, writable
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False)
    prc = prc_features_to_metric(
        fake.to(device), real.to(device), prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=True, verbose=False
    )
    return {
        f"fid_{extractor}": float(fid[KEY_METRIC_FID]),
        "precision": float(prc["precision"]),
        "recall": float(prc["recall"]),
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) of two feature sets (Heusel et al. 2017);
    tr (Σ_a Σ_b)^½ = Σ √λ of the symmetric Σ_a^½ Σ_b Σ_a^½ (no complex rounding residue)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
