"""Neighbourhood-density metrics of paper Section 4.2 and the memorization search of Section 5,
on exact blocked k-NN (`knn.knn`), so they scale to 50K queries × 1.2M references.

- AvgkNN: mean Euclidean distance of a query to its k nearest reference points (k = 5).
- LOF (Breunig et al. 2000), novelty mode: the local outlier factor of each query with
  respect to the reference set, as scikit-learn's `LocalOutlierFactor(novelty=True)` and
  pyod's `LOF` compute it (lrd with the 1e-10 guard, reachability max(k-dist(o), d(q, o))).
- Nearest-neighbour distances and the globally closest query–reference pairs.
"""

from __future__ import annotations

import numpy as np
import torch

from lowdensity.metrics.knn import knn


def avg_knn(
    queries: np.ndarray,
    references: np.ndarray,
    k: int = 5,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    **knn_kwargs,
) -> np.ndarray:
    """Mean distance of every query to its k nearest references. `neighbours`: the queries'
    k' ≥ k nearest references, if already searched (first k columns used)."""
    if neighbours is None:
        neighbours = knn(queries, references, k, **knn_kwargs)
    return neighbours[0][:, :k].mean(axis=1)


class LocalOutlierFactor:
    """LOF of new points against a fixed reference set (novelty detection)."""

    def __init__(
        self, references: np.ndarray, k: int = 20, neighbours: tuple[np.ndarray, np.ndarray] | None = None, **knn_kwargs
    ):
        """`neighbours`: the references' own k' ≥ k nearest other references (distances,
        indices), if already computed; their first k columns are used."""
        self.references = references
        self.k = k
        self.knn_kwargs = knn_kwargs
        if neighbours is None:
            neighbours = knn(self.references, self.references, k, exclude_self=True, **knn_kwargs)
        dist, idx = neighbours[0][:, :k], neighbours[1][:, :k]
        self.k_distance = dist[:, -1]
        self.lrd = self._lrd(dist, idx)

    def _lrd(self, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
        reach = np.maximum(dist, self.k_distance[idx])
        return 1.0 / (reach.mean(axis=1) + 1e-10)

    def score(self, queries: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """LOF of each query: mean lrd of its k nearest references over its own lrd (≈ 1 inside clusters).
        `neighbours`: the queries' k' ≥ k nearest references, if already searched (first k columns used)."""
        if neighbours is None:
            neighbours = knn(queries, self.references, self.k, **self.knn_kwargs)
        dist, idx = neighbours[0][:, : self.k], neighbours[1][:, : self.k]
        return (self.lrd[idx] / self._lrd(dist, idx)[:, None]).mean(axis=1)


def closest_pairs(
    queries: np.ndarray,
    references: np.ndarray,
    top: int,
    block: int | None = None,
    device: str | torch.device = "cpu",
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `top` query–reference pairs with the smallest distance over all pairs, ascending:
    (distances, query indices, reference indices). Each query's nearest neighbours are a
    superset of its share of the global top, so the search is a per-query top-k merged.
    `neighbours`: the queries' k' ≥ min(top, N) nearest references, if already searched."""
    k = min(top, len(references))
    dist, idx = neighbours if neighbours is not None else knn(queries, references, k, block=block, device=device)
    dist, idx = dist[:, :k], idx[:, :k]
    flat = np.argsort(dist, axis=None, kind="stable")[:top]
    q, j = np.unravel_index(flat, dist.shape)
    return dist[q, j], q, idx[q, j]
