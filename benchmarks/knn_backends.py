"""The evaluation's searches under each k-NN backend, against faiss, scikit-learn and prdc.

    python benchmarks/knn_backends.py [--queries 10000] [--references 40000] [--dim 512] [--threads 1]
    python benchmarks/knn_backends.py --features results/features/efficientnet_lite0/reference.npy

Each measurement runs in a forked child (the inputs made before the fork), so its peak resident
memory is its own (inputs included). Prints, per task, the seconds and peak memory of every
contender and its time as a ratio to the configured default (`evaluation.knn_backend`), plus
whether the answers agree:

- k-NN (k = 20, the LOF search): ours with `backend: torch` and `backend: faiss` (both exact in
  float64, identical), faiss `IndexFlatL2` alone (float32 distances), scikit-learn's brute force;
- precision, recall, density and coverage (k = 3): ours against prdc's `compute_prdc`;
- the memorization search (the 500 nearest references of every query): ours, each backend.

With --features, the references are the rows of a features file (e.g. the default run's 10,000
EfficientNet features) and the queries a random subset of them, perturbed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np
import yaml


def measured(fn):
    """(result, seconds, peak RSS in MB) of fn() in a forked child."""
    parent, child = multiprocessing.get_context("fork").Pipe()

    def run():
        start = time.perf_counter()
        out = fn()
        child.send((out, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))

    process = multiprocessing.get_context("fork").Process(target=run)
    process.start()
    result = parent.recv()
    process.join()
    return result


def report(task: str, rows: list[tuple[str, float, float]], default: str) -> None:
    reference = dict((name, seconds) for name, seconds, _ in rows)[default]
    print(f"\n{task}")
    for name, seconds, peak in rows:
        print(f"  {name:<34} {seconds:8.2f} s  {peak:8.0f} MB  x{seconds / reference:5.2f} of {default}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--references", type=int, default=40000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--features", help="a features .npy: its rows are the references")
    parser.add_argument("--threads", type=int, default=1, help="threads of every contender (a rule's job: 1)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    from prdc import compute_prdc
    from sklearn.neighbors import NearestNeighbors

    from lowdensity.metrics.knn import improved_precision_recall, knn

    default = yaml.safe_load(open("config.yaml"))["evaluation"]["knn_backend"]
    rng = np.random.default_rng(0)
    if args.features:
        refs = np.load(args.features).astype(np.float32)
        picked = refs[rng.integers(0, len(refs), min(args.queries, len(refs)))]
        queries = (picked + 0.1 * refs.std() * rng.normal(size=picked.shape)).astype(np.float32)
    else:
        refs = rng.normal(size=(args.references, args.dim)).astype(np.float32)
        queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    print(f"{len(queries)} queries x {len(refs)} references, {refs.shape[1]}-d, {args.threads} thread(s)")
    knn(queries[:100], refs[:1000], 5, backend="faiss")  # warm the thread pools

    def flat():
        index = faiss.IndexFlatL2(refs.shape[1])
        index.add(refs)
        return index.search(queries, 20)

    def sklearn():
        return NearestNeighbors(n_neighbors=20, algorithm="brute", n_jobs=args.threads).fit(refs).kneighbors(queries)

    ours = {b: measured(lambda b=b: knn(queries, refs, 20, backend=b)) for b in ("torch", "faiss")}
    flat_out, flat_s, flat_mb = measured(flat)
    sk_out, sk_s, sk_mb = measured(sklearn)
    rows = [(f"ours, backend {b}", s, mb) for b, (_, s, mb) in ours.items()]
    rows += [("faiss IndexFlatL2 (float32)", flat_s, flat_mb), ("scikit-learn brute force", sk_s, sk_mb)]
    report("k-NN, k = 20", rows, f"ours, backend {default}")
    same = all(np.array_equal(a, b) for a, b in zip(ours["torch"][0], ours["faiss"][0]))
    agree = np.mean(ours["torch"][0][1] == flat_out[1])
    print(f"  backends identical: {same}; faiss float32 order agrees on {agree:.4%} of entries")

    n = min(len(queries), len(refs))
    real, fake = refs[:n], queries[:n]
    pr = {b: measured(lambda b=b: improved_precision_recall(real, fake, k=3, backend=b)) for b in ("torch", "faiss")}
    theirs, prdc_s, prdc_mb = measured(lambda: compute_prdc(real_features=real, fake_features=fake, nearest_k=3))
    rows = [(f"ours, backend {b}", s, mb) for b, (_, s, mb) in pr.items()] + [("prdc 0.2", prdc_s, prdc_mb)]
    report(f"precision, recall, density, coverage ({n} x {n}, k = 3)", rows, f"ours, backend {default}")
    gap = max(abs(pr[default][0][m] - float(theirs[m])) for m in theirs)
    print(f"  largest difference from prdc: {gap:.2e}")

    top = min(500, len(refs))
    memo = {b: measured(lambda b=b: knn(queries, refs, top, backend=b)) for b in ("torch", "faiss")}
    rows = [(f"ours, backend {b}", s, mb) for b, (_, s, mb) in memo.items()]
    report(f"memorization search ({top} nearest per query)", rows, f"ours, backend {default}")


if __name__ == "__main__":
    main()
