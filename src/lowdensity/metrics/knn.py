"""Exact k-nearest-neighbour search in blocks, and improved precision/recall, on any device.

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

Memory: the inputs stay where they are (a NumPy array or a memory map); the device holds one
float32 copy of each side, and float64 only for the rows being re-ranked (the gathered
candidates, or one reference block at a time), never a float64 copy of the whole reference.
On CUDA the block side follows the free device memory (`block=None`).

Precision/recall (Kynkäänniemi et al. 2019) reuse the same blocked search: a point p lies in
some ball B(s_j, ρ_j) iff d(p, s_j) ≤ ρ_j for some j, iff min_j (‖p − s_j‖² − ρ_j²) ≤ 0 — the
power of p with respect to the spheres. That is a one-nearest-neighbour search under the power
distance, whose float32 GEMM form ‖p‖² + (‖s_j‖² − ρ_j²) − 2 p·s_j differs from the k-NN
candidates only by the per-reference offset −ρ_j². A point is certified inside (outside) when its
smallest float32 power plus (minus) its rounding bound is still ≤ 0 (> 0); the rest are decided
with float64 differences over all balls.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
CPU_BLOCK = 4096


def default_block(device: torch.device) -> int:
    """Rows per block: 4096 on the CPU; on CUDA the side of a float32 block whose distance matrix
    and its top-k workspace fill about an eighth of the free memory (at least 1024)."""
    if device.type != "cuda":
        return CPU_BLOCK
    free, _ = torch.cuda.mem_get_info(device)
    return max(1024, min(65536, int(math.sqrt(free / 8 / 4 / 3))))


def _float32(points, device: torch.device) -> torch.Tensor:
    """A float32 copy on `device`; on the CPU, float32 input (a memory map included) is used in
    place, read-only (the searches never write to it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(points, dtype=np.float32)).to(device)


def _squared_norms(points: torch.Tensor, block: int) -> torch.Tensor:
    """‖x‖² of every row in the points' dtype, a block at a time (no squared copy of all rows)."""
    return torch.cat([points[s : s + block].square().sum(1) for s in range(0, len(points), block)])


def _squared_norms64(points: torch.Tensor, block: int) -> torch.Tensor:
    """‖x‖² of every row in float64, a block at a time."""
    return torch.cat([points[s : s + block].double().square().sum(1) for s in range(0, len(points), block)])


def _rows64(points, rows, device: torch.device) -> torch.Tensor:
    """Rows of the original input (any float dtype, possibly memory-mapped) in float64 on `device`."""
    return torch.as_tensor(np.asarray(points[rows], dtype=np.float64)).to(device)


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


def _exact_float64(
    q: torch.Tensor, references, k: int, own: torch.Tensor | None, block: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the k nearest references from float64 differences ‖a − b‖
    (no cancellation), exact ties; one float64 reference block at a time. `own[i]`: the
    reference index query i must skip."""
    n_ref = len(references)
    best_d = torch.full((len(q), k), float("inf"), dtype=torch.float64, device=device)
    best_i = torch.full((len(q), k), -1, dtype=torch.long, device=device)
    for rs in range(0, n_ref, block):
        r = _rows64(references, slice(rs, rs + block), device)
        for qs in range(0, len(q), block):
            d = torch.cdist(q[qs : qs + block], r, compute_mode="donot_use_mm_for_euclid_dist")
            idx = torch.arange(rs, rs + d.shape[1], device=device).expand_as(d)
            if own is not None:
                d = d.masked_fill(own[qs : qs + block, None] == idx, float("inf"))
            new_d, new_i = _block_smallest(d, idx, min(k, d.shape[1]))
            # stable sort of the 2k candidates: earlier blocks (lower indices) win ties
            cand_d, cand_i = (
                torch.cat([best_d[qs : qs + block], new_d], 1),
                torch.cat([best_i[qs : qs + block], new_i], 1),
            )
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]
            best_d[qs : qs + block], best_i[qs : qs + block] = cand_d.gather(1, order), cand_i.gather(1, order)
    return best_d, best_i


def _candidate_distances(queries, references, cand: torch.Tensor, device: torch.device) -> torch.Tensor:
    """float64 ‖q − r‖ from each query to each of its candidates (rows of `cand`), from the
    original inputs, a chunk of rows at a time (≤ 16 MB of differences on the CPU, 256 MB on
    CUDA) through buffers allocated once: freeing a chunk of a different size every step let
    glibc's heap grow to several GB."""
    references = references if isinstance(references, np.ndarray) else np.asarray(references)
    n, m = cand.shape
    dim = references.shape[1]
    rows = max(1, (2**25 if device.type == "cuda" else 2**21) // (m * dim))
    gathered = np.empty((rows * m, dim), dtype=references.dtype)
    diff = torch.empty((rows, m, dim), dtype=torch.float64, device=device)
    out = torch.empty((n, m), dtype=torch.float64, device=device)
    cand_rows = cand.cpu().numpy()
    for s in range(0, n, rows):
        e = min(s + rows, n)
        np.take(references, cand_rows[s:e].ravel(), axis=0, out=gathered[: (e - s) * m])
        chunk = diff[: e - s]
        chunk.copy_(torch.from_numpy(gathered[: (e - s) * m]).view(e - s, m, dim))
        chunk.sub_(_rows64(queries, slice(s, e), device)[:, None]).square_()
        torch.sum(chunk, dim=-1, out=out[s:e])
    return out.sqrt_()


def _merge_candidates(best_d, best_i, new_d, new_i, m):
    vals, pos = torch.topk(torch.cat([best_d, new_d], 1), m, dim=1, largest=False)
    return vals, torch.cat([best_i, new_i], 1).gather(1, pos)


def _float32_candidates(
    q: torch.Tensor, r: torch.Tensor, m: int, self_search: bool, block: int, offsets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 squared distances (plus the per-reference `offsets`, if any) and indices of the m
    smallest references of every query."""
    n, dev = len(q), q.device
    best_d = torch.full((n, m), float("inf"), device=dev)
    best_i = torch.zeros((n, m), dtype=torch.long, device=dev)
    q_sq = _squared_norms(q, block)
    r_sq = q_sq if r is q else _squared_norms(r, block)
    if offsets is not None:
        r_sq = r_sq + offsets
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


def _faiss_candidates(q: torch.Tensor, r: torch.Tensor, m: int, self_search: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`_float32_candidates` by faiss's exhaustive float32 search (its BLAS path computes the
    same ‖a‖² + ‖b‖² − 2ab, so the same rounding bound holds), on as many threads as torch uses.
    A self-search asks for one more neighbour and drops each point's own entry (or, where
    duplicates pushed it out, the farthest)."""
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    queries, references = np.ascontiguousarray(q.numpy()), np.ascontiguousarray(r.numpy())
    distances, indices = faiss.knn(queries, references, m + int(self_search))
    if self_search:
        own = indices == np.arange(len(indices))[:, None]
        own[~own.any(1), -1] = True
        keep = ~own
        distances, indices = distances[keep].reshape(len(q), m), indices[keep].reshape(len(q), m)
    return torch.from_numpy(distances), torch.from_numpy(indices).long()


def _rounding_bound(q_sq64: torch.Tensor, r_sq64_max: torch.Tensor, dim: int) -> torch.Tensor:
    """Bound on the float32 error of ‖a‖² + ‖b‖² − 2ab (inputs rounded to float32 included)."""
    return 2 * (dim + 2) * FLOAT32_UNIT_ROUNDOFF * (q_sq64 + r_sq64_max)


def _power_bound(p32: torch.Tensor, s_sq64_max: torch.Tensor, rho64: torch.Tensor, block: int) -> torch.Tensor:
    """Bound on the float32 error of each point's power ‖p‖² + (‖s‖² − ρ²) − 2 p·s: the distance
    part's, and that of ‖s‖² − ρ² rounded to float32."""
    return _rounding_bound(_squared_norms64(p32, block), s_sq64_max, p32.shape[1]) + 4 * FLOAT32_UNIT_ROUNDOFF * (
        (rho64**2).max() + s_sq64_max
    )


def recall(real: np.ndarray, fake: np.ndarray, k: int, backend: str = "torch", **search) -> float:
    """Improved recall (Kynkäänniemi et al. 2019): the fraction of real points inside some fake
    point's k-NN ball."""
    inside = inside_balls(fake, knn_radii(fake, k, backend=backend, **search), real, **search)
    return float(inside.mean()) if len(inside) else float("nan")


KNN_BACKENDS = ("torch", "faiss")


def knn(
    queries: np.ndarray,
    references: np.ndarray,
    k: int,
    exclude_self: bool = False,
    block: int | None = None,
    device: str | torch.device = "cpu",
    margin: int = 8,
    backend: str = "torch",
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (sorted ascending) and indices of the k nearest references of every query,
    equal to a float64 brute-force search (ties: lower reference index first), computed on
    `device` in blocks of `block` rows (None: 4096 on the CPU, from free memory on CUDA).

    With `exclude_self`, queries are the references themselves and each point's own entry is
    skipped (its k nearest *other* points). `margin`: extra float32 candidates per row.
    `backend`: who finds the float32 candidates — our blocked GEMM (`torch`) or faiss's exact
    `IndexFlatL2` search (`faiss`, CPU only); the float64 re-rank and certification are the same,
    so both give the same answer."""
    if backend not in KNN_BACKENDS:
        raise ValueError(f"knn backend must be one of {KNN_BACKENDS}, not {backend!r}")
    device = torch.device(device)
    block = block or default_block(device)
    available = len(references) - int(exclude_self)
    if k > available:
        raise ValueError(f"k = {k} exceeds the {available} available references")
    if exclude_self and len(queries) != len(references):
        raise ValueError("exclude_self searches a set against itself: queries and references must be the same points")
    m = min(k + margin, available)
    r32 = _float32(references, device)
    q32 = r32 if exclude_self else _float32(queries, device)
    if backend == "faiss" and device.type == "cpu":
        cand_f32, cand = _faiss_candidates(q32, r32, m, exclude_self)
    else:
        cand_f32, cand = _float32_candidates(q32, r32, m, exclude_self, block)
    # exact distances of the candidates, ordered by (distance, index)
    cand = torch.sort(cand, dim=1).values
    dim = r32.shape[1]
    exact = _candidate_distances(queries, references, cand, device)
    order = torch.sort(exact, dim=1, stable=True).indices[:, :k]
    best_d, best_i = exact.gather(1, order), cand.gather(1, order)
    if m < available:
        bound = _rounding_bound(_squared_norms64(q32, block), _squared_norms64(r32, block).max(), dim)
        # a small relative slack covers the float64 rounding of the exact distances
        unsure = cand_f32.max(1).values.double() - bound <= best_d[:, -1] ** 2 * (1 + 1e-9)
        if unsure.any():
            rows_unsure = torch.nonzero(unsure).ravel()
            own = rows_unsure if exclude_self else None
            best_d[unsure], best_i[unsure] = _exact_float64(
                _rows64(queries, rows_unsure.cpu().numpy(), device), references, k, own, block, device
            )
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def knn_radii(points: np.ndarray, k: int, **knn_kwargs) -> np.ndarray:
    """Distance of every point to its k-th nearest other point (the k-NN ball radius)."""
    return knn(points, points, k, exclude_self=True, **knn_kwargs)[0][:, -1]


def inside_balls(
    support: np.ndarray,
    radii: np.ndarray,
    points: np.ndarray,
    block: int | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """For each of `points`: is it inside at least one support point's ball (radius `radii`)?
    The smallest power ‖p − s_j‖² − ρ_j² of each point, certified or decided exactly (module
    docstring): equal to testing ‖p − s_j‖ ≤ ρ_j for every j in float64."""
    device = torch.device(device)
    block = block or default_block(device)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    s32, p32 = _float32(support, device), _float32(points, device)
    rho64 = torch.as_tensor(np.asarray(radii, dtype=np.float64), device=device)
    power_f32, _ = _float32_candidates(p32, s32, 1, False, block, offsets=-(rho64**2).float())
    power_f32 = power_f32[:, 0].double()
    bound = _power_bound(p32, _squared_norms64(s32, block).max(), rho64, block)
    inside = power_f32 + bound <= 0
    unsure = ~inside & (power_f32 - bound <= 0)
    rows = torch.nonzero(unsure).ravel()
    if len(rows):
        p64 = _rows64(points, rows.cpu().numpy(), device)
        found = torch.zeros(len(rows), dtype=torch.bool, device=device)
        for ss in range(0, len(s32), block):
            s64 = _rows64(support, slice(ss, ss + block), device)
            for ps in range(0, len(rows), block):
                d = torch.cdist(p64[ps : ps + block], s64, compute_mode="donot_use_mm_for_euclid_dist")
                found[ps : ps + block] |= (d <= rho64[None, ss : ss + block]).any(1)
        inside[rows] = found
    return inside.cpu().numpy()


def ball_pairs(
    support: np.ndarray,
    radii: np.ndarray,
    points: np.ndarray,
    block: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Every (point, support point) pair with ‖p − s_j‖ ≤ ρ_j, as two int64 index arrays (sorted
    by point, then support). The float32 power ‖p − s_j‖² − ρ_j² of each pair is certified
    inside (≤ −bound) or outside (> bound) by its rounding bound (module docstring); the pairs in
    between are decided by float64 differences. Equal to testing every pair in float64."""
    device = torch.device(device)
    block = block or default_block(device)
    s32, p32 = _float32(support, device), _float32(points, device)
    rho64 = torch.as_tensor(np.asarray(radii, dtype=np.float64), device=device)
    s_sq64 = _squared_norms64(s32, block)
    offsets = (s_sq64 - rho64**2).float()  # ‖s‖² − ρ² per support point, one float32 rounding
    p_sq = _squared_norms(p32, block)
    bound = _power_bound(p32, s_sq64.max(), rho64, block)
    slack32 = (bound * (1 + 1e-6)).float()  # widened to cover its own rounding to float32
    found_points, found_support = [], []
    for ps in range(0, len(p32), block):
        pe = min(ps + block, len(p32))
        slack = slack32[ps:pe, None]
        for ss in range(0, len(s32), block):
            se = min(ss + block, len(s32))
            power = torch.addmm(offsets[None, ss:se], p32[ps:pe], s32[ss:se].T, alpha=-2).add_(p_sq[ps:pe, None])
            inside = power <= -slack
            unsure = torch.nonzero(~inside & (power <= slack))
            if len(unsure):
                rows, cols = unsure[:, 0] + ps, unsure[:, 1] + ss
                gap = _rows64(points, rows.cpu().numpy(), device) - _rows64(support, cols.cpu().numpy(), device)
                inside[unsure[:, 0], unsure[:, 1]] = gap.square().sum(1).sqrt() <= rho64[cols]
            pairs = torch.nonzero(inside)
            found_points.append(pairs[:, 0] + ps)
            found_support.append(pairs[:, 1] + ss)
    if not found_points:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    point_index, support_index = torch.cat(found_points), torch.cat(found_support)
    order = torch.argsort(point_index * len(support) + support_index)
    return point_index[order].cpu().numpy(), support_index[order].cpu().numpy()


def precision_density_coverage(
    point_index: np.ndarray, support_index: np.ndarray, num_points: int, num_support: int, k: int
) -> dict:
    """From the pairs of `ball_pairs` (fake points in real k-NN balls): improved precision
    (Kynkäänniemi et al. 2019: the fraction of fakes in at least one real ball), density (Naeem
    et al. 2020, Eq. 4: the balls holding each fake, summed, over k × fakes; 1 when fakes are
    distributed like reals) and coverage (Naeem et al., Eq. 5: the fraction of real balls
    holding at least one fake)."""
    counts = np.bincount(point_index, minlength=num_points)
    return {
        "precision": float((counts > 0).mean()) if num_points else float("nan"),
        "density": float(counts.sum() / (k * num_points)) if num_points else float("nan"),
        "coverage": float(len(np.unique(support_index)) / num_support),
    }


def improved_precision_recall(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = 3,
    real_radii: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    block: int | None = None,
    backend: str = "torch",
) -> dict:
    """Kynkäänniemi et al. (2019): precision = fraction of fake points inside some real point's
    k-NN ball (radius: distance to its k-th nearest other real point); recall symmetrically.
    With them, from the same pairs of fakes and real balls, Naeem et al.'s (2020) density and
    coverage (`precision_density_coverage`), as prdc computes them with `nearest_k = k`.
    `real_radii` (from `knn_radii`) saves recomputing the real balls for every fake set; `backend`:
    the radii's k-NN searches' (`knn`)."""
    search = {"device": device, "block": block}
    if real_radii is None:
        real_radii = knn_radii(real, k, backend=backend, **search)
    fake_in_real = ball_pairs(real, real_radii, fake, **search)
    fidelity = precision_density_coverage(*fake_in_real, len(fake), len(real), k)
    return {
        "precision": fidelity["precision"],
        "recall": recall(real, fake, k, backend=backend, **search),
        "density": fidelity["density"],
        "coverage": fidelity["coverage"],
    }
