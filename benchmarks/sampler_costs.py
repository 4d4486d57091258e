"""Seconds per image of every low-density sampler at its default strength, one after another on
this device with the same threads, batch and steps, and each one's ratio to the baseline sampler.

The sweep's own timings (results/samplers.csv) are taken inside the pipeline, where two jobs may
share the cores; this benchmark is the clean comparison. It reads the trained networks of a run
(results/ by default: `snakemake samplers` first).

    python benchmarks/sampler_costs.py [--config config.yaml] [--samples 100] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from lowdensity.config import load_config
from lowdensity.stages.samplers import sample_with

SWEPT = ("paper", "boost_and_skip", "self_guided", "minority_guidance")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=["config.yaml"])
    parser.add_argument("--results", default="results")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(*args.config)
    r = Path(args.results)
    guides = {
        "classifier_model": r / "classifier/model.pt",
        "classifier_gaussians": r / "classifier/gaussians.pt",
        "discriminator_model": r / "discriminator/model.pt",
        "discriminator_gaussians": r / "discriminator/gaussians.pt",
        "minority_model": r / "samplers/minority/model.pt",
    }
    missing = [str(p) for p in guides.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `snakemake samplers` first")
    sampling = {**cfg["sampling"], "num_samples": args.samples, "shards": 1}
    points = [("baseline", 0.0)] + [(s, cfg["samplers"][s]["default"]) for s in SWEPT]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sampler, strength in points:
            params = {"sampling": sampling, "samplers": cfg["samplers"], "guidance": cfg["guidance"]}
            out = Path(tmp) / f"{sampler}.npz"
            sample_with(
                params=json.loads(json.dumps(params)),
                sampler=sampler,
                strength=strength,
                model=str(r / "ddpm/model.pt"),
                guides={k: str(v) for k, v in guides.items()},
                shard=0,
                out=str(out),
                device=args.device,
            )
            seconds[sampler] = float(np.load(out)["seconds_per_image"])
            device = str(np.load(out)["device"])
    print(f"{args.samples} images, {sampling['steps']} steps, batch {sampling['batch_size']}, {device}\n")
    print("| sampler | strength | seconds per image | × baseline |\n|---|---:|---:|---:|")
    for sampler, strength in points:
        print(f"| {sampler} | {strength:g} | {seconds[sampler]:.4f} | {seconds[sampler] / seconds['baseline']:.2f} |")


if __name__ == "__main__":
    main()
