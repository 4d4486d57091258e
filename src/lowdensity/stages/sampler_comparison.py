"""The low-density samplers side by side (`snakemake samplers`): one table, figure S1 and Table 1
per sampler, all from the sweep's sample files and their features in each evaluation space.

Per point (sampler, strength) and space: improved precision and recall, density and coverage,
the Vendi scores (with their intervals) and the medians of hardness, AvgkNN and LOF
(`density_metrics`, unchanged), the Fréchet distance of the point's
features to the reference's (FID when the space is Inception's; here the space's own), the
Rarity score (Han et al. 2022; median over the samples inside some real k-NN ball, and the
fraction inside none), and the sampler's seconds per image as it measured them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lowdensity.guidance.minority import rarity_scores
from lowdensity.io import atomic_to_csv, atomic_write_text, read_npz
from lowdensity.layout import parse_point
from lowdensity.metrics.fidelity import frechet_distance

STRENGTH_NAMES = {
    "baseline": "—",
    "paper": "α (β fixed)",
    "boost_and_skip": "γ",
    "self_guided": "scale",
    "minority_guidance": "w",
}


# The set summary's fidelity and diversity columns a point's row carries, with their intervals
# (precision, precision_low, precision_high, …, vendi, vendi_q2, …).
SUMMARY_METRICS = ("precision", "recall", "density", "coverage", "vendi")


def sampler_table(rarity_k: int, points: dict[str, str], spaces: dict[str, dict], out_csv: str) -> None:
    """results/samplers.csv: one row per (point, space).

    `points`: point name → sample file; `spaces`: space → {"reference": features .npy,
    "neighbours": the reference's own neighbours, "sets": point name → (features .npy, summary .csv)}."""
    from lowdensity.stages.evaluation import load_features, reference_radii

    rows = []
    for space, files in spaces.items():
        reference = load_features(files["reference"])
        radii = reference_radii(files["neighbours"], reference, rarity_k)
        for name, sample_path in points.items():
            features_path, summary_path = files["sets"][name]
            features = load_features(features_path)["features"]
            summary = pd.read_csv(summary_path).iloc[0]
            rarity = rarity_scores(reference["features"], radii, features)
            inside = np.isfinite(rarity)
            timing = read_npz(sample_path, ("seconds_per_image", "device"))
            sampler, strength = parse_point(name)
            rows.append(
                {
                    "sampler": sampler,
                    "strength": strength,
                    "space": space,
                    "n": int(summary["n"]),
                    **summary[[c for c in summary.index if c.split("_")[0] in SUMMARY_METRICS]].to_dict(),
                    "median_hardness": summary["median_hardness"],
                    "median_avgknn": summary["median_avgknn"],
                    "median_lof": summary["median_lof"],
                    "frechet_distance": frechet_distance(features, reference["features"]),
                    "median_rarity": float(np.median(rarity[inside])) if inside.any() else float("nan"),
                    "outside_every_ball": float(1 - inside.mean()),
                    "rarity_k": rarity_k,
                    "seconds_per_image": float(timing["seconds_per_image"]),
                    "device": str(timing["device"]),
                }
            )
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def table1_samplers(*, params: dict, metrics: list[str], points: dict[str, str], out: str, markdown: str) -> None:
    """Table 1 for every sampler at its default strength: the cost of collecting images per
    hardness range against rejection sampling from the baseline (the same seeds).

    Args:
        params: the config's table1 section.
        metrics: per-image metrics of the real set and of each default point.
        points: point name → its sample file (the baseline point and each sampler's default).
        out: the table (CSV).
        markdown: the table as Markdown.
    """
    from lowdensity.stages.evaluation import make_table1

    named = {parse_point(name)[0]: name for name in points}  # sampler → its default point
    make_table1(
        params=params,
        metrics=metrics,
        samples={sampler: points[name] for sampler, name in named.items()},
        out=out,
        markdown=markdown,
        set_names={sampler: f"sweep_{name}" for sampler, name in named.items()},
    )


def write_markdown(table_csv: str, out_md: str) -> None:
    """A Markdown table of each sampler's points with fidelity, density and cost (results/samplers.md)."""
    table = pd.read_csv(table_csv)
    lines = [
        "| sampler | strength | space | precision | recall | density | coverage | Vendi | median AvgkNN "
        "| median hardness | FD | median Rarity | outside | s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.sampler} | {r.strength:g} | {r.space} | "
            f"{r.precision:.3f} | {r.recall:.3f} | {r.density:.3f} | {r.coverage:.3f} | {r.vendi:.3g} | "
            f"{r.median_avgknn:.3g} | "
            f"{r.median_hardness:.3g} | {r.frechet_distance:.3g} | "
            f"{r.median_rarity:.3g} | {r.outside_every_ball:.2f} | "
            f"{r.seconds_per_image:.3g} |"
        )
    atomic_write_text(out_md, "\n".join(lines) + "\n")


def samplers_table(*, rarity_k: int, points: dict[str, str], spaces: dict[str, dict], out: str, markdown: str) -> None:
    """Every sweep point in every space: fidelity, density, Rarity and cost (results/samplers.csv).

    Args:
        rarity_k: the k of the Rarity score's reference balls.
        points: sweep point name → its sample file.
        spaces: feature space → {"reference": features .npy, "neighbours": the reference's own
            neighbours .npz, "sets": {point: [features .npy, density summary .csv]}}.
        out: the table (CSV).
        markdown: the same table as Markdown.
    """
    sampler_table(rarity_k, points, spaces, out)
    write_markdown(out, markdown)
