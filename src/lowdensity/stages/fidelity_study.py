"""When does β raise fidelity? The dose–response study behind figure D2 (`snakemake fidelity_study`).

Each rung is the DDPM at one training step (an EMA snapshot, or the trained model), so the rungs
differ only in how much the model still gets wrong. A rung has its own baseline set, its own H′
trained against that set, and cells of the β sweep at each α in each β form, all on the baseline's
first seeds and labels: cell i of one rung differs from cell i of another β only by the guidance,
so gains are measured on pairs. Everything is measured against the real held-out set (its own
k-NN balls), in the classifier's and the first extractor's space.

The table is tidy: one row per (rung, space, set, α, β, form, timestep, metric) with value, low,
high (a `level` interval from `bootstrap` replicates) and n. `set` is `baseline` (the rung's
baseline set: precision, recall, FID), `cell` (improved precision, recall, density, coverage,
Vendi, PRD F1/8 and F8), `gain` (precision of a β > 0 cell minus its β = 0 cell, paired
bootstrap) or `discriminator` (H′'s held-out accuracy and ROC-AUC at each evaluation t).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lowdensity.io import atomic_to_csv
from lowdensity.metrics.fidelity import frechet_distance
from lowdensity.metrics.intervals import centred_interval, paired_gain
from lowdensity.metrics.knn import inside_balls, knn_radii, recall
from lowdensity.runtime import select_device
from lowdensity.stages.evaluation import load_features
from lowdensity.stages.guided_eval import fidelity_with_intervals

COLUMNS = ["rung", "space", "set", "alpha", "beta", "form", "timestep", "metric", "value", "low", "high", "n"]


def rung_fidelity(
    *,
    params: dict,
    rung: int,
    real: dict[str, str],
    baseline: dict[str, str],
    cells: dict[str, dict[str, str]],
    weights: dict[str, dict],
    discriminator_accuracy: str,
    out: str,
    device: str = "auto",
) -> None:
    """One rung of the study: its baseline set's precision, recall and FID, every cell's fidelity
    with intervals, each β > 0 cell's precision gain over its β = 0 cell, and its H′'s held-out
    accuracy and ROC-AUC per t (module docstring).

    Args:
        params: fidelity_study's bootstrap, level, seed and prd, with the evaluation's
            precision_k and knn_backend.
        rung: the DDPM's training step.
        real: feature space → the real held-out set's features.
        baseline: feature space → the rung's baseline set's features.
        cells: feature space → cell name → the cell's features.
        weights: cell name → {"alpha", "beta", "form"}.
        discriminator_accuracy: the rung's H′'s accuracy table (train-discriminator).
        out: the rung's table (CSV).
        device: where the searches run (auto: CUDA when present).
    """
    dev = select_device(device)
    k, backend = params["precision_k"], params["knn_backend"]
    intervals = {
        "bootstrap": params["bootstrap"],
        "vendi_bootstrap": params["bootstrap"],
        "level": params["level"],
        "seed": params["seed"],
        "vendi_orders": [1],
    }
    rows = []

    def labels(w: dict) -> dict:
        """A cell's α, β and form as the table writes them: a β = 0 cell has no β form."""
        return {**w, "form": w["form"] if w["beta"] else "none"}

    def row(space: str, set_: str, metric: str, value: float, **fields) -> None:
        rows.append({"rung": rung, "space": space, "set": set_, "metric": metric, "value": value, **fields})

    for space, real_path in real.items():
        real_features = np.array(load_features(real_path)["features"])
        radii = knn_radii(real_features, k, device=dev, backend=backend)
        base = np.array(load_features(baseline[space])["features"])
        inside = inside_balls(real_features, radii, base, device=dev)
        spread = np.random.default_rng(params["seed"]).integers(0, len(base), (params["bootstrap"], len(base)))
        low, high = centred_interval(inside.mean(), inside[spread].mean(1), params["level"])
        row(space, "baseline", "improved_precision", float(inside.mean()), low=low, high=high, n=len(base))
        row(space, "baseline", "recall", recall(real_features, base, k, backend=backend, device=dev), n=len(base))
        row(space, "baseline", "fid", frechet_distance(real_features, base), n=len(base))
        indicators = {}
        for name, path in cells[space].items():
            w = weights[name]
            samples = np.array(load_features(path)["features"])
            indicators[name] = inside_balls(real_features, radii, samples, device=dev)
            for r in fidelity_with_intervals(
                real_features, samples, k, params["prd"], intervals, reference_radii=radii, device=dev
            ):
                row(space, "cell", r["metric"], r["value"], low=r["low"], high=r["high"], n=r["n"], **labels(w))
        for name, w in weights.items():
            if w["beta"] == 0:
                continue
            reference = next(n for n, v in weights.items() if v["alpha"] == w["alpha"] and v["beta"] == 0)
            value, low, high = paired_gain(
                indicators[reference], indicators[name], params["bootstrap"], params["level"], params["seed"]
            )
            n = len(indicators[name])
            row(space, "gain", "improved_precision", value, low=low, high=high, n=n, **w)
    accuracy = pd.read_csv(discriminator_accuracy)
    for r in accuracy[accuracy["condition"] == "as is"].itertuples():
        row("discriminator", "discriminator", "accuracy", r.accuracy, n=r.n, timestep=r.timestep)
        row("discriminator", "discriminator", "roc_auc", r.roc_auc, n=r.n, timestep=r.timestep)
    atomic_to_csv(pd.DataFrame(rows, columns=COLUMNS), out)


def figD2(*, tables: list[str], extractor: str, out: str, csv: str) -> None:
    """Figure D2 and the study's table (results/fidelity_study.csv): the rungs' tables in one.

    Args:
        tables: each rung's table (rung-fidelity).
        extractor: the space whose precision figure D2 draws (the first extractor's).
        out: the figure (PDF).
        csv: the study's table.
    """
    from lowdensity.figures import paper

    table = pd.concat([pd.read_csv(path) for path in tables], ignore_index=True).sort_values("rung", kind="stable")
    atomic_to_csv(table, csv)
    paper.draw_figD2(csv, extractor, out)
