"""AvgkNN + LOF: our exact blocked k-NN against pyod on the same features, and the
memorization search's throughput in pairs per second.

    python benchmarks/density_speed.py [--references 20000] [--queries 5000] [--dim 512]

Prints both times, their ratio, and the largest difference of the values (they must agree).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lowdensity.density import LocalOutlierFactor, avg_knn, closest_pairs


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

    start = time.perf_counter()
    ours_knn = avg_knn(queries, refs, k=5, device=args.device)
    ours_lof = LocalOutlierFactor(refs, k=20, device=args.device).score(queries)
    ours = time.perf_counter() - start

    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    start = time.perf_counter()
    ref_knn = KNN(n_neighbors=5, method="mean").fit(refs).decision_function(queries)
    ref_lof = LOF(n_neighbors=20).fit(refs).decision_function(queries)
    theirs = time.perf_counter() - start
    print(f"{args.queries} queries x {args.references} references, {args.dim}-d")
    print(f"AvgkNN + LOF: ours {ours:.1f} s, pyod {theirs:.1f} s, speed-up x{theirs / ours:.1f}")
    print(f"max |difference|: AvgkNN {np.abs(ours_knn - ref_knn).max():.2e}, LOF {np.abs(ours_lof - ref_lof).max():.2e}")

    start = time.perf_counter()
    closest_pairs(queries, refs, top=500, device=args.device)
    seconds = time.perf_counter() - start
    print(f"closest-pair search: {args.queries * args.references / seconds:.3g} pairs/s ({seconds:.1f} s)")
    try:
        import faiss
    except ImportError:
        print("faiss not installed: pip install faiss-cpu to compare with IndexFlatL2")
        return
    start = time.perf_counter()
    index = faiss.IndexFlatL2(args.dim)
    index.add(refs)
    index.search(queries, 500)
    seconds = time.perf_counter() - start
    print(f"faiss IndexFlatL2 (top 500 per query): {args.queries * args.references / seconds:.3g} pairs/s ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
