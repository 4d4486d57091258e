"""Exact k-nearest-neighbour search in blocks, and improved precision/recall.

Distances are Euclidean, computed as ‖a‖² + ‖b‖² − 2ab in float64 blocks of queries ×
references with a running top-k, so memory stays bounded for any reference size.
"""

from __future__ import annotations

import numpy as np
import torch


def knn(queries: np.ndarray, references: np.ndarray, k: int, exclude_self: bool = False, block: int = 4096,
        device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Distances (sorted ascending) and indices of the k nearest references of every query.

    With `exclude_self`, queries are the references themselves and each point's own entry is
    skipped (its k nearest *other* points)."""
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float64, device=device)
    r = torch.as_tensor(np.asarray(references), dtype=torch.float64, device=device)
    if k > len(r) - int(exclude_self):
        raise ValueError(f"k = {k} exceeds the {len(r) - int(exclude_self)} available references")
    r_sq = (r**2).sum(1)
    out_d, out_i = [], []
    for qs in range(0, len(q), block):
        qb = q[qs:qs + block]
        best_d = torch.full((len(qb), k), float("inf"), dtype=torch.float64, device=device)
        best_i = torch.full((len(qb), k), -1, dtype=torch.long, device=device)
        q_sq = (qb**2).sum(1, keepdim=True)
        for rs in range(0, len(r), block):
            d2 = (q_sq + r_sq[None, rs:rs + block] - 2 * qb @ r[rs:rs + block].T).clamp_min(0)
            idx = torch.arange(rs, rs + d2.shape[1], device=device).expand_as(d2)
            if exclude_self:
                own = torch.arange(qs, qs + len(qb), device=device)[:, None] == idx
                d2 = d2.masked_fill(own, float("inf"))
            cand_d = torch.cat([best_d, d2], 1)
            cand_i = torch.cat([best_i, idx], 1)
            # stable sort: among equal distances the lower reference index wins
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        out_d.append(best_d.sqrt().cpu())
        out_i.append(best_i.cpu())
    return torch.cat(out_d).numpy(), torch.cat(out_i).numpy()


def improved_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict:
    """Kynkäänniemi et al. (2019): precision = fraction of fake points inside some real point's
    k-NN ball (radius: distance to its k-th nearest other real point); recall symmetrically."""

    def coverage(support: np.ndarray, points: np.ndarray) -> float:
        radii = knn(support, support, k, exclude_self=True)[0][:, -1]
        inside = np.zeros(len(points), dtype=bool)
        p = torch.as_tensor(points, dtype=torch.float64)
        s = torch.as_tensor(support, dtype=torch.float64)
        rad = torch.as_tensor(radii)
        for start in range(0, len(p), 2048):
            d = torch.cdist(p[start:start + 2048], s)
            inside[start:start + 2048] = (d <= rad[None]).any(1).numpy()
        return float(inside.mean())

    return {"precision": coverage(real, fake), "recall": coverage(fake, real)}
