"""Exact k-nearest-neighbour search in blocks, and improved precision/recall.

Distances are Euclidean, computed as ‖a‖² + ‖b‖² − 2ab in float64 blocks of queries ×
references with a running top-k, so memory stays bounded for any reference size.
"""

from __future__ import annotations

import numpy as np
import torch


def _block_smallest(d2: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each row, ordered by (distance, index) exactly.

    `topk` is fast but leaves the choice among equal values at the k-th place, and their
    order, unspecified; rows with such a tie fall back to a stable sort of the whole row."""
    vals, pos = torch.topk(d2, k, dim=1, largest=False, sorted=True)
    ties = (d2 <= vals[:, -1:]).sum(1) > k
    if ties.any():
        order = torch.sort(d2[ties], dim=1, stable=True).indices[:, :k]
        pos[ties] = order
    pos = torch.sort(pos, dim=1).values  # by index first …
    order = torch.sort(d2.gather(1, pos), dim=1, stable=True).indices  # … then stably by distance
    pos = pos.gather(1, order)
    return d2.gather(1, pos), idx.gather(1, pos)


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
            new_d, new_i = _block_smallest(d2, idx, min(k, d2.shape[1]))
            # stable sort of the 2k candidates: earlier blocks (lower indices) win ties
            cand_d, cand_i = torch.cat([best_d, new_d], 1), torch.cat([best_i, new_i], 1)
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        out_d.append(best_d.sqrt().cpu())
        out_i.append(best_i.cpu())
    return torch.cat(out_d).numpy(), torch.cat(out_i).numpy()


def knn_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point to its k-th nearest other point (the k-NN ball radius)."""
    return knn(points, points, k, exclude_self=True)[0][:, -1]


def coverage(support: np.ndarray, radii: np.ndarray, points: np.ndarray, block: int = 2048) -> float:
    """Fraction of `points` inside at least one support point's ball (radius `radii`)."""
    s = torch.as_tensor(np.asarray(support), dtype=torch.float64)
    rad = torch.as_tensor(np.asarray(radii), dtype=torch.float64)
    p = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    inside = np.zeros(len(p), dtype=bool)
    for start in range(0, len(p), block):
        d = torch.cdist(p[start:start + block], s)
        inside[start:start + block] = (d <= rad[None]).any(1).numpy()
    return float(inside.mean()) if len(p) else float("nan")


def improved_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, real_radii: np.ndarray | None = None) -> dict:
    """Kynkäänniemi et al. (2019): precision = fraction of fake points inside some real point's
    k-NN ball (radius: distance to its k-th nearest other real point); recall symmetrically.
    `real_radii` (from `knn_radii`) saves recomputing the real balls for every fake set."""
    if real_radii is None:
        real_radii = knn_radii(real, k)
    return {"precision": coverage(real, real_radii, fake), "recall": coverage(fake, knn_radii(fake, k), real)}
