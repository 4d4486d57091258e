"""AvgkNN + LOF: our exact blocked k-NN against pyod on the same features, and the
memorization search's throughput in pairs per second against faiss `IndexFlatL2`.

    python benchmarks/density_speed.py [--references 20000] [--queries 5000] [--dim 512]

Prints three comparisons, each with the largest difference of the values (they must agree):
- cold: everything from the raw features (ours: one symmetric self-search of the references
  and one query search serve both metrics; pyod: KNN and LOF each fit and score);
- per extra set: the reference side already fitted (ours: one query search; pyod: the two
  fitted models' `decision_function`) — the pipeline's case, which scores many sets against
  one training reference;
- the closest-pair search (top 500 per query) against faiss.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lowdensity.metrics.density import LocalOutlierFactor, avg_knn, closest_pairs
from lowdensity.metrics.knn import knn


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(args.references, args.dim)).astype(np.float32)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    print(f"{args.queries} queries x {args.references} references, {args.dim}-d, AvgkNN k = 5, LOF k = 20")
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    # warm both up (thread pools, first-call allocation) on a small problem
    knn(queries[:200], refs[:2000], 20, device=args.device)
    LOF(n_neighbors=20).fit(refs[:2000]).decision_function(queries[:200])

    lof, ours_fit = timed(lambda: LocalOutlierFactor(refs, k=20, device=args.device))
    near, ours_score = timed(lambda: knn(queries, refs, 20, device=args.device))
    ours_knn, ours_lof = avg_knn(queries, refs, k=5, neighbours=near), lof.score(queries, neighbours=near)

    (pyod_knn, pyod_lof), pyod_fit = timed(
        lambda: (KNN(n_neighbors=5, method="mean").fit(refs), LOF(n_neighbors=20).fit(refs))
    )
    (ref_knn, ref_lof), pyod_score = timed(
        lambda: (pyod_knn.decision_function(queries), pyod_lof.decision_function(queries))
    )
    cold, theirs_cold = ours_fit + ours_score, pyod_fit + pyod_score
    print(f"cold (fit + score): ours {cold:.1f} s, pyod {theirs_cold:.1f} s, speed-up x{theirs_cold / cold:.1f}")
    print(
        f"per extra set (score only): ours {ours_score:.2f} s, pyod "
        f"{pyod_score:.2f} s, speed-up x{pyod_score / ours_score:.1f}; "
        f"against pyod fitting per set x{theirs_cold / ours_score:.1f}"
    )
    print(
        f"max |difference|: AvgkNN {np.abs(ours_knn - ref_knn).max():.2e}, LOF {np.abs(ours_lof - ref_lof).max():.2e}"
    )

    _, seconds = timed(lambda: closest_pairs(queries, refs, top=500, device=args.device))
    print(f"closest-pair search: {args.queries * args.references / seconds:.3g} pairs/s ({seconds:.1f} s)")
    try:
        import faiss
    except ImportError:
        print("faiss not installed (it is in requirements.lock): no comparison with IndexFlatL2")
        return

    def faiss_search():
        index = faiss.IndexFlatL2(args.dim)
        index.add(refs)
        return index.search(queries, 500)

    (f_d2, f_idx), seconds = timed(faiss_search)
    ours_d, ours_idx = knn(queries, refs, 500, device=args.device)
    print(
        "faiss IndexFlatL2 (top 500 per query): "
        f"{args.queries * args.references / seconds:.3g} pairs/s ({seconds:.1f} s); "
        f"neighbour sets agree on {np.mean([len(set(a) & set(b)) / 500 for a, b in zip(ours_idx, f_idx)]):.4%} "
        "(faiss: float32 distances, ties unordered)"
    )


if __name__ == "__main__":
    main()
