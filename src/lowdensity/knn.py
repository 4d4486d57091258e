"""Exact k-nearest-neighbour search in blocks, and improved precision/recall.

Distances are Euclidean. The search runs in two passes so that it is both fast and exact:

1. Candidates: ‖a‖² + ‖b‖² − 2ab in float32 GEMM blocks of queries × references with a running
   top-m (m = k + `margin`), so memory stays bounded for any reference size. A self-search
   (queries = references) computes each pair of blocks once and uses it for both sides.
2. Re-rank: the m candidates' distances recomputed in float64 as ‖a − b‖, ordered by
   (distance, index). A row is *certified* when its m-th float32 distance, less the float32
   rounding bound 2(D + 2)·u·(‖a‖² + max‖b‖²), still exceeds its exact k-th distance: no
   reference outside the candidates can then be nearer. Uncertified rows (near-duplicates,
   ties at the boundary) are searched again over all references with float64 differences,
   so the answer equals brute force with ties broken by the lower reference index.
"""

from __future__ import annotations

import numpy as np
import torch

FLOAT32_UNIT_ROUNDOFF = 2.0**-24


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


def _exact_float64(q: torch.Tensor, r: torch.Tensor, k: int, own: torch.Tensor | None, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the k nearest references from float64 differences ‖a − b‖
    (no cancellation), exact ties. `own[i]`: the reference index query i must skip."""
    out_d, out_i = [], []
    for qs in range(0, len(q), block):
        qb = q[qs:qs + block]
        best_d = torch.full((len(qb), k), float("inf"), dtype=torch.float64, device=q.device)
        best_i = torch.full((len(qb), k), -1, dtype=torch.long, device=q.device)
        for rs in range(0, len(r), block):
            d = torch.cdist(qb, r[rs:rs + block], compute_mode="donot_use_mm_for_euclid_dist")
            idx = torch.arange(rs, rs + d.shape[1], device=q.device).expand_as(d)
            if own is not None:
                d = d.masked_fill(own[qs:qs + block, None] == idx, float("inf"))
            new_d, new_i = _block_smallest(d, idx, min(k, d.shape[1]))
            # stable sort of the 2k candidates: earlier blocks (lower indices) win ties
            cand_d, cand_i = torch.cat([best_d, new_d], 1), torch.cat([best_i, new_i], 1)
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        out_d.append(best_d)
        out_i.append(best_i)
    return torch.cat(out_d), torch.cat(out_i)


def _merge_candidates(best_d, best_i, new_d, new_i, m):
    vals, pos = torch.topk(torch.cat([best_d, new_d], 1), m, dim=1, largest=False)
    return vals, torch.cat([best_i, new_i], 1).gather(1, pos)


def _float32_candidates(q: torch.Tensor, r: torch.Tensor, m: int, self_search: bool, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 squared distances and indices of m candidate neighbours of every query."""
    n, dev = len(q), q.device
    best_d = torch.full((n, m), float("inf"), device=dev)
    best_i = torch.zeros((n, m), dtype=torch.long, device=dev)
    q_sq, r_sq = (q**2).sum(1), (r**2).sum(1)
    for qs in range(0, n, block):
        qe = min(qs + block, n)
        for rs in range(qs if self_search else 0, len(r), block):
            re = min(rs + block, len(r))
            d2 = torch.addmm(r_sq[None, rs:re], q[qs:qe], r[rs:re].T, alpha=-2).add_(q_sq[qs:qe, None])
            if self_search and rs == qs:
                d2.fill_diagonal_(float("inf"))
            width = min(m, re - rs)
            vals, pos = torch.topk(d2, width, dim=1, largest=False)
            best_d[qs:qe], best_i[qs:qe] = _merge_candidates(best_d[qs:qe], best_i[qs:qe], vals, pos + rs, m)
            if self_search and rs != qs:  # the same block, seen from the references' side
                vals, pos = torch.topk(d2.T, min(m, qe - qs), dim=1, largest=False)
                best_d[rs:re], best_i[rs:re] = _merge_candidates(best_d[rs:re], best_i[rs:re], vals, pos + qs, m)
    return best_d, best_i


def knn(queries: np.ndarray, references: np.ndarray, k: int, exclude_self: bool = False, block: int = 4096,
        device: str | torch.device = "cpu", margin: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Distances (sorted ascending) and indices of the k nearest references of every query,
    equal to a float64 brute-force search (ties: lower reference index first).

    With `exclude_self`, queries are the references themselves and each point's own entry is
    skipped (its k nearest *other* points). `margin`: extra float32 candidates per row."""
    q64 = torch.as_tensor(np.asarray(queries), dtype=torch.float64, device=device)
    r64 = torch.as_tensor(np.asarray(references), dtype=torch.float64, device=device)
    available = len(r64) - int(exclude_self)
    if k > available:
        raise ValueError(f"k = {k} exceeds the {available} available references")
    if exclude_self and len(q64) != len(r64):
        raise ValueError("exclude_self searches a set against itself: queries and references must be the same points")
    m = min(k + margin, available)
    cand_f32, cand = _float32_candidates(q64.float(), r64.float(), m, exclude_self, block)
    # exact distances of the candidates, ordered by (distance, index)
    cand = torch.sort(cand, dim=1).values
    rows = max(1, 2**21 // (m * q64.shape[1]))  # differences of ≤ 16 MB at a time
    exact = torch.cat([(q64[s:s + rows, None] - r64[cand[s:s + rows]]).square_().sum(-1).sqrt_()
                       for s in range(0, len(q64), rows)])
    order = torch.sort(exact, dim=1, stable=True).indices[:, :k]
    best_d, best_i = exact.gather(1, order), cand.gather(1, order)
    if m < available:
        bound = 2 * (q64.shape[1] + 2) * FLOAT32_UNIT_ROUNDOFF * ((q64**2).sum(1) + (r64**2).sum(1).max())
        # a small relative slack covers the float64 rounding of the exact distances
        unsure = cand_f32.max(1).values.double() - bound <= best_d[:, -1]**2 * (1 + 1e-9)
        if unsure.any():
            own = torch.nonzero(unsure).ravel() if exclude_self else None
            best_d[unsure], best_i[unsure] = _exact_float64(q64[unsure], r64, k, own, block)
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def knn_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point to its k-th nearest other point (the k-NN ball radius)."""
    return knn(points, points, k, exclude_self=True)[0][:, -1]


def inside_balls(support: np.ndarray, radii: np.ndarray, points: np.ndarray, block: int = 2048) -> np.ndarray:
    """For each of `points`: is it inside at least one support point's ball (radius `radii`)?"""
    s = torch.as_tensor(np.asarray(support), dtype=torch.float64)
    rad = torch.as_tensor(np.asarray(radii), dtype=torch.float64)
    p = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    inside = np.zeros(len(p), dtype=bool)
    for start in range(0, len(p), block):
        d = torch.cdist(p[start:start + block], s)
        inside[start:start + block] = (d <= rad[None]).any(1).numpy()
    return inside


def coverage(support: np.ndarray, radii: np.ndarray, points: np.ndarray, block: int = 2048) -> float:
    """Fraction of `points` inside at least one support point's ball (radius `radii`)."""
    inside = inside_balls(support, radii, points, block)
    return float(inside.mean()) if len(inside) else float("nan")


def improved_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, real_radii: np.ndarray | None = None) -> dict:
    """Kynkäänniemi et al. (2019): precision = fraction of fake points inside some real point's
    k-NN ball (radius: distance to its k-th nearest other real point); recall symmetrically.
    `real_radii` (from `knn_radii`) saves recomputing the real balls for every fake set."""
    if real_radii is None:
        real_radii = knn_radii(real, k)
    return {"precision": coverage(real, real_radii, fake), "recall": coverage(fake, knn_radii(fake, k), real)}
