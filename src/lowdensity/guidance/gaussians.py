"""Class-conditional Gaussians in an embedding space and the hardness score (paper Eq. 3).

H(x, y) = ½[(f(x) − μ_y)ᵀ Σ_y⁻¹ (f(x) − μ_y) + ln det Σ_y + k ln 2π]

is the negative log-likelihood of the embedding f(x) under class y's Gaussian. Sample
covariances of k-dimensional embeddings are singular or badly conditioned when a class
has few images, so each Σ_y is shrunk towards a scaled identity with the Ledoit–Wolf
intensity (a data-driven, closed-form choice that minimises the expected Frobenius
error; scikit-learn's `ledoit_wolf`), or with a fixed intensity from the config. The
Cholesky factor L_y (Σ_y = L_y L_yᵀ) and ln det Σ_y = 2 Σ ln diag L_y are stored, so
that H needs one triangular solve and is differentiable in f(x).

Optionally the Gaussians are fitted per noise-level bucket: bucket b holds the
embeddings f(x_t, t) of training images noised to timesteps t in that bucket, and a
sample at timestep t is scored with its bucket's Gaussians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def shrunk_covariance(x: np.ndarray, shrinkage: str | float) -> tuple[np.ndarray, float]:
    """Covariance of the rows of x (normalised by n, as Ledoit–Wolf) shrunk towards μ_tr·I.

    Returns (Σ, shrinkage intensity used)."""
    from sklearn.covariance import empirical_covariance, ledoit_wolf

    x = np.asarray(x, dtype=np.float64)
    if shrinkage == "ledoit_wolf":
        cov, intensity = ledoit_wolf(x)
        return cov, float(intensity)
    intensity = float(shrinkage)
    emp = empirical_covariance(x)
    mu = np.trace(emp) / emp.shape[0]
    return (1 - intensity) * emp + intensity * mu * np.eye(emp.shape[0]), intensity


def label_hardness(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    shrinkage="ledoit_wolf",
) -> np.ndarray:
    """H(x, y) of Eq. 3 for every embedding under its own label's Gaussian, fitted on the
    reference rows of that label: the numbers of `ClassGaussians.fit(...).hardness_of_label`,
    one class at a time, so memory holds one class's reference rows and one k × k factor
    (ImageNet in a 2048-d space: 1,000 classes' factors would take 34 GB at once)."""
    out = np.full(len(labels), np.nan)
    constant = embeddings.shape[1] * math.log(2 * math.pi)
    for c in np.unique(labels):
        rows = np.asarray(reference[np.flatnonzero(reference_labels == c)], dtype=np.float64)
        if len(rows) < 2:
            raise ValueError(f"class {c} has {len(rows)} reference embeddings: cannot fit a Gaussian")
        cov, _ = shrunk_covariance(rows, shrinkage)
        chol64 = np.linalg.cholesky(cov)
        logdet = torch.as_tensor(2 * np.log(np.diag(chol64)).sum(), dtype=torch.float32)
        chol = torch.as_tensor(chol64, dtype=torch.float32)
        mean = torch.as_tensor(rows.mean(axis=0), dtype=torch.float32)
        chosen = np.flatnonzero(labels == c)
        e = torch.as_tensor(np.asarray(embeddings[chosen]), dtype=torch.float32)
        z = torch.linalg.solve_triangular(chol, (e - mean).T, upper=False)
        out[chosen] = (0.5 * ((z**2).sum(0) + logdet + constant)).numpy()
    return out


@dataclass
class ClassGaussians:
    """Per (noise bucket, class) mean, Cholesky factor and log-determinant.

    means (B, C, k), chol (B, C, k, k) lower-triangular, logdet (B, C); `bucket_edges`
    (B + 1,) splits the original timesteps [0, T) into buckets (B = 1: clean embeddings).
    """

    means: torch.Tensor
    chol: torch.Tensor
    logdet: torch.Tensor
    bucket_edges: torch.Tensor

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    @property
    def num_classes(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        shrinkage="ledoit_wolf",
        buckets: np.ndarray | None = None,
        bucket_edges=(0, 1),
    ) -> tuple["ClassGaussians", list[dict]]:
        """Fit from embeddings (N, k) with labels (N,) and bucket indices (N,) (all 0 if None).

        Returns the Gaussians and one summary row per (bucket, class) (count, shrinkage used)."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        buckets = np.zeros(len(labels), dtype=np.int64) if buckets is None else np.asarray(buckets)
        num_buckets = len(bucket_edges) - 1
        k = embeddings.shape[1]
        means = np.zeros((num_buckets, num_classes, k))
        chol = np.zeros((num_buckets, num_classes, k, k))
        logdet = np.zeros((num_buckets, num_classes))
        summary = []
        for b in range(num_buckets):
            for c in range(num_classes):
                rows = embeddings[(labels == c) & (buckets == b)]
                if len(rows) < 2:
                    raise ValueError(f"class {c} has {len(rows)} embeddings in noise bucket {b}: cannot fit a Gaussian")
                cov, intensity = shrunk_covariance(rows, shrinkage)
                means[b, c] = rows.mean(axis=0)
                chol[b, c] = np.linalg.cholesky(cov)
                logdet[b, c] = 2 * np.log(np.diag(chol[b, c])).sum()
                summary.append(
                    {"bucket": b, "class": c, "count": len(rows), "shrinkage": intensity, "logdet": logdet[b, c]}
                )
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        return cls(
            f32(means), f32(chol), f32(logdet), torch.as_tensor(np.asarray(bucket_edges), dtype=torch.long)
        ), summary

    def bucket_of(self, t: torch.Tensor) -> torch.Tensor:
        """Bucket index of each original timestep t."""
        edges = self.bucket_edges.to(t.device)
        return (torch.bucketize(t, edges[1:-1], right=True)).clamp(0, len(edges) - 2)

    def hardness(self, emb: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """H(x, j) for every class j, shape (N, C) (Eq. 3); differentiable in `emb`.

        One triangular solve per (bucket, class) over all embeddings in that bucket, so memory
        stays O(N·k) for any k."""
        if len(emb) == 0:
            return emb.new_zeros(0, self.num_classes)
        bucket = torch.zeros(len(emb), dtype=torch.long, device=emb.device) if t is None else self.bucket_of(t)
        means, chol, logdet = (a.to(emb.device) for a in (self.means, self.chol, self.logdet))
        constant = self.dim * math.log(2 * math.pi)
        order, blocks = [], []
        for b in torch.unique(bucket).tolist():
            rows = torch.nonzero(bucket == b).squeeze(1)
            e = emb[rows]
            columns = []
            for c in range(self.num_classes):
                z = torch.linalg.solve_triangular(chol[b, c], (e - means[b, c]).T, upper=False)
                columns.append(0.5 * ((z**2).sum(0) + logdet[b, c] + constant))
            order.append(rows)
            blocks.append(torch.stack(columns, dim=1))
        return torch.cat(blocks)[torch.argsort(torch.cat(order))]

    def hardness_of_label(self, emb: torch.Tensor, labels: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.hardness(emb, t).gather(1, labels[:, None]).squeeze(1)

    def state_dict(self) -> dict:
        return {"means": self.means, "chol": self.chol, "logdet": self.logdet, "bucket_edges": self.bucket_edges}

    @classmethod
    def from_state_dict(cls, state: dict) -> "ClassGaussians":
        return cls(state["means"], state["chol"], state["logdet"], state["bucket_edges"])
