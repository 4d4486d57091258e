"""Our precision, recall, density and coverage against prdc's on a run's own feature files.

    python benchmarks/prdc_check.py [RESULTS] [--sets real baseline guided gan]

For every feature space of RESULTS (default: results/) and every named set, computes the four
metrics with `improved_precision_recall` (the pipeline's code, k = evaluation.precision_k of
config.yaml) and with prdc 0.2's `compute_prdc` (Naeem et al.'s reference code, `nearest_k = k`)
on the same features, and prints both and the largest difference; exits 1 if any differs by more
than 1e-6.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from lowdensity.metrics.knn import improved_precision_recall

METRICS = ("precision", "recall", "density", "coverage")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results")
    parser.add_argument("--sets", nargs="+", default=["real", "baseline", "guided", "gan"])
    args = parser.parse_args()
    from prdc import compute_prdc

    k = yaml.safe_load(open(Path(__file__).parents[1] / "config.yaml"))["evaluation"]["precision_k"]
    worst = 0.0
    for space in sorted(p for p in (Path(args.results) / "features").iterdir() if p.is_dir()):
        reference = np.load(space / "reference.npy")
        for name in args.sets:
            fake = np.load(space / f"{name}.npy")
            ours = improved_precision_recall(reference, fake, k=k)
            theirs = compute_prdc(real_features=reference, fake_features=fake, nearest_k=k)
            gap = max(abs(ours[m] - float(theirs[m])) for m in METRICS)
            worst = max(worst, gap)
            shown = "  ".join(f"{m} {ours[m]:.4f}/{float(theirs[m]):.4f}" for m in METRICS)
            print(f"{space.name:>18} {name:>9} (n = {len(fake)}): {shown}  largest difference {gap:.1e}")
    print(f"largest difference over every space and set: {worst:.1e} (ours/prdc, k = {k})")
    return int(worst > 1e-6)


if __name__ == "__main__":
    sys.exit(main())
