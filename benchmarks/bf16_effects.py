"""Where bf16 moves the default's numbers: the DDPM's training, its sampling, or the feature space.

    python benchmarks/bf16_effects.py FP32_RESULTS BF16_RESULTS [--samples 1000] [--threads 2]

FP32_RESULTS and BF16_RESULTS are the results/ folders of two runs of the default configuration
that differ only in precision (every `precision` key fp32; `precision: auto` on a CPU with bf16
instructions). The first `--samples` baseline samples of each run are taken from its baseline set,
and the same samples (same seeds and labels) are drawn again with the other run's sampling
precision, so that every (training precision, sampling precision) pair has a set. Each set's
improved precision, recall, density and coverage (k = `evaluation.precision_k`) against the
reference images are computed in EfficientNet-Lite0 features extracted in fp32 and in bf16.
A shift that follows the features' precision whatever made the images is the measurement's;
one that follows the images' origin in fp32 features is the generator's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lowdensity.config import load_config
from lowdensity.metrics.features import load_extractor
from lowdensity.metrics.knn import improved_precision_recall
from lowdensity.stages.evaluation import image_set_rows
from lowdensity.stages.sampling import sample_shard


def first_samples(path: Path, count: int) -> np.ndarray:
    """Samples 0 … count − 1 of a sample file, in sample order."""
    data = np.load(path)
    order = np.argsort(data["indices"])[:count]
    return data["images"][order]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fp32_results", type=Path)
    parser.add_argument("bf16_results", type=Path)
    parser.add_argument("--config", nargs="+", default=["config.yaml"])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(*args.config, check_files=False)
    runs = {"fp32": args.fp32_results, "bf16": args.bf16_results}
    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trained, results in runs.items():
            for sampled in ("fp32", "bf16"):
                if sampled == trained:
                    sets[(trained, sampled)] = first_samples(results / "samples/baseline.npz", args.samples)
                    continue
                sampling = {**cfg["sampling"], "num_samples": args.samples, "shards": 1, "precision": sampled}
                out = Path(tmp) / f"{trained}_{sampled}.npz"
                sample_shard(sampling, str(results / "ddpm/model.pt"), 0, str(out), "cpu")
                sets[(trained, sampled)] = first_samples(out, args.samples)
    data = str(args.fp32_results / "data/train.npz")
    pixels, rows, _ = image_set_rows("reference", data, cfg["evaluation"]["num_reference"])
    reference_images = np.asarray(pixels[rows])
    spec = cfg["evaluation"]["extractors"][0]
    k = cfg["evaluation"]["precision_k"]
    print(
        f"{args.samples} baseline samples per set, {len(rows)} reference images, {spec['name']}, k = {k}\n\n"
        "| features | DDPM trained in | sampled in | precision | recall | density | coverage |\n"
        "|---|---|---|---:|---:|---:|---:|"
    )
    for features in ("fp32", "bf16"):
        extractor = load_extractor({**spec, "precision": features}, torch.device("cpu"))
        reference = extractor(reference_images)
        for (trained, sampled), images in sets.items():
            m = improved_precision_recall(reference, extractor(images), k=k)
            print(
                f"| {features} | {trained} | {sampled} | {m['precision']:.3f} | {m['recall']:.3f} "
                f"| {m['density']:.3f} | {m['coverage']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
