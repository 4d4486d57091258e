"""The Vendi score (Friedman & Dieng, TMLR 2023) and its order-q family (Pasarkar & Dieng, 2024).

With a kernel k(x, x) = 1 and K the n × n kernel matrix, the score of order q is the exponential
of the Rényi entropy of order q of the eigenvalues λ of K / n (which sum to 1):
VS_q = exp(log Σ λ^q / (1 − q)), and VS_1 = exp(−Σ λ log λ) (Eq. 1 of the Vendi paper): the
effective number of distinct samples, from 1 (all alike) to n (all orthogonal). The kernel is the
cosine similarity of the features, as in the paper's image experiments, so K = X̂X̂ᵀ with unit
rows X̂; the nonzero eigenvalues of X̂X̂ᵀ / n are those of the d × d matrix X̂ᵀX̂ / n, so a set
larger than its feature width costs one pass over the rows and a d × d eigendecomposition —
exact, for 1.28M samples as for 1,000.
"""

from __future__ import annotations

import numpy as np
import torch

ROWS_PER_BLOCK = 65536


def unit_rows(features: np.ndarray) -> torch.Tensor:
    """The features scaled to unit norm (the cosine kernel), float64; zero rows are refused (their
    cosine similarity is undefined)."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"{int((norms == 0).sum())} feature rows are zero: the cosine kernel is undefined for them")
    return x / norms


def kernel_eigenvalues(unit: torch.Tensor, weights: torch.Tensor | None = None) -> np.ndarray:
    """Eigenvalues of K / n for unit rows (n > d: through X̂ᵀ W X̂ / n, else X̂ W^½ … the n × n form),
    `weights`: each row's multiplicity (a bootstrap replicate; None: 1 each)."""
    n, d = unit.shape
    w = torch.ones(n, dtype=unit.dtype) if weights is None else weights.to(unit.dtype)
    total = float(w.sum())
    if n > d:
        gram = torch.zeros((d, d), dtype=unit.dtype)
        for s in range(0, n, ROWS_PER_BLOCK):
            block = unit[s : s + ROWS_PER_BLOCK]
            gram += (block * w[s : s + ROWS_PER_BLOCK, None]).T @ block
    else:
        root = w.sqrt()
        gram = (unit * root[:, None]) @ (unit * root[:, None]).T
    # float64 eigenvalues even for float32 products: float32 eigvalsh returned NaN on some
    # resampled kernels (many zero rows, so many zero eigenvalues)
    return torch.linalg.eigvalsh(gram.double() / total).clamp_min(0).numpy()


def vendi_from_eigenvalues(eigenvalues: np.ndarray, q: float) -> float:
    """exp of the order-q Rényi entropy of the eigenvalues (normalised to sum 1)."""
    lam = eigenvalues[eigenvalues > 0] / eigenvalues.sum()
    if q == 1:
        return float(np.exp(-(lam * np.log(lam)).sum()))
    return float(np.exp(np.log((lam**q).sum()) / (1 - q)))


def vendi_scores(features: np.ndarray, orders: list[float]) -> dict[float, float]:
    """VS_q of the set for each q in `orders` (cosine kernel)."""
    eigenvalues = kernel_eigenvalues(unit_rows(features))
    return {q: vendi_from_eigenvalues(eigenvalues, q) for q in orders}


def vendi_bootstrap(features: np.ndarray, orders: list[float], replicates: int, seed: int) -> dict[float, np.ndarray]:
    """VS_q of `replicates` sets resampled with replacement (multiplicities from one generator
    seeded by `seed`), for percentile intervals. float32 products (the eigenvalues only need the
    few significant digits an interval shows), float64 eigendecompositions."""
    unit = unit_rows(features).float()
    rng = np.random.default_rng(seed)
    n = len(unit)
    values = {q: np.empty(replicates) for q in orders}
    for b in range(replicates):
        weights = torch.from_numpy(np.bincount(rng.integers(0, n, n), minlength=n))
        eigenvalues = kernel_eigenvalues(unit, weights).astype(np.float64)
        for q in orders:
            values[q][b] = vendi_from_eigenvalues(eigenvalues, q)
    if any(np.isnan(v).any() for v in values.values()):
        raise FloatingPointError("a Vendi bootstrap replicate is NaN: its kernel's eigendecomposition failed")
    return values
