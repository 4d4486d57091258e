"""The figure stages: each reads the run's files, computes the figure's tidy table (every number
the figure shows, one row per image or plotted value), writes it as CSV and draws the PDF from
that CSV with `lowdensity.figures.paper`, which does no arithmetic of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lowdensity.data import image_shape, read_sample_set
from lowdensity.figures import paper
from lowdensity.io import atomic_to_csv
from lowdensity.layout import cell_name

SAMPLE_TITLES = {"baseline": "baseline samples (DDPM)", "guided": "guided samples (ours)", "gan": "GAN samples"}


def _load(path: str, shape: tuple[int, int, int] | None) -> dict:
    """A sample file's images, labels, seeds and class names, checked against the data's (C, H, W)."""
    data = read_sample_set(path, shape)
    return data | {"class_names": [str(c) for c in data["class_names"]]}


def _pairs_rows(baseline: dict, indices) -> list[dict]:
    return [
        {
            "index": int(i),
            "seed": int(baseline["seeds"][i]),
            "label": int(baseline["labels"][i]),
            "class_name": baseline["class_names"][baseline["labels"][i]],
        }
        for i in indices
    ]


def _check_pairs(baseline: dict, guided: dict, n: int) -> None:
    """Samples 0 … n − 1 of both sets exist and share their seeds and labels (the guided set may be
    the shorter: guidance.num_samples)."""
    sizes = len(baseline["seeds"]), len(guided["seeds"])
    if n > min(sizes):
        raise ValueError(f"{n} pairs asked of a baseline set of {sizes[0]} and a guided set of {sizes[1]} samples")
    if not (
        np.array_equal(baseline["seeds"][:n], guided["seeds"][:n])
        and np.array_equal(baseline["labels"][:n], guided["labels"][:n])
    ):
        raise ValueError("baseline and guided sets do not share seeds and labels: they cannot be paired")


def fig1(*, metrics: str, real: str, samples: dict[str, str], per_panel: int, out: str, csv: str) -> None:
    """Figure 1: real images of the lowest and highest density, then each generator's samples.

    Args:
        metrics: the first feature space's per-image metrics (collect-metrics).
        real: the prepared held-out split.
        samples: generator name → its gathered sample file, in the panels' order.
        per_panel: images per panel.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.data import load_split

    real_images = load_split(real).images
    per_image = pd.read_csv(metrics)
    hardness = per_image[per_image["metric"] == "hardness"]
    by_hardness = hardness[hardness["set"] == "real"].sort_values("value")
    panels = {
        "real, low density (highest hardness)": (by_hardness.tail(per_panel)[::-1], real_images),
        "real, high density (lowest hardness)": (by_hardness.head(per_panel), real_images),
    }
    for name, path in samples.items():
        first = hardness[hardness["set"] == name].set_index("index").loc[np.arange(per_panel)]
        table = pd.DataFrame({"index": np.arange(per_panel), "value": first["value"].to_numpy()})
        panels[SAMPLE_TITLES.get(name, f"{name} samples")] = (table, _load(path, real_images.shape[1:])["images"])
    rows = [
        {"panel": title, "index": int(r["index"]), "hardness": float(r["value"])}
        for title, (table, _) in panels.items()
        for _, r in table.iterrows()
    ]
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig1(csv, {title: images for title, (_, images) in panels.items()}, per_panel, out)


def fig3(
    *,
    cells: list[str],
    scores: str,
    data: str,
    alphas: list[float],
    betas: list[float],
    classes: list[int],
    out: str,
    csv: str,
) -> None:
    """Figure 3: the α × β grid of samples from one seed of each shown class (its first sample).

    Args:
        cells: the grid's cell sample files (guided, hardness loss).
        scores: the cells' hardness table (score-sets).
        data: a prepared split: the (C, H, W) of the samples.
        alphas: the rows' α.
        betas: the columns' β.
        classes: the classes shown.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    samples = {Path(p).stem: _load(p, image_shape(data)) for p in cells}
    per_image = pd.read_csv(scores)
    rows = []
    for c in classes:
        for a in alphas:
            for b in betas:
                name = cell_name("hardness", a, b)
                cell = samples[name]
                index = int(np.flatnonzero(cell["labels"] == c)[0])
                h = paper.hardness_of(per_image, name).set_index("index").loc[index]
                rows.append(
                    {
                        "class": c,
                        "class_name": cell["class_names"][c],
                        "alpha": a,
                        "beta": b,
                        "index": index,
                        "seed": int(cell["seeds"][index]),
                        "hardness": h["hardness"],
                        "predicted": int(h["predicted"]),
                    }
                )
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig3(csv, {name: cell["images"] for name, cell in samples.items()}, out)


def fig4(
    *, scores: str, precision: str, alphas: list[float], fig4b_alpha: float, betas: list[float], out: str, csv: str
) -> None:
    """Figure 4: (a) hardness per α at β = 0; (b) improved precision and PRD F1/8 (the paper's
    precision, Sajjadi et al.) per β at a fixed α in every feature space, with bootstrap intervals
    and the Spearman correlation of each with β.

    Args:
        scores: the cells' hardness table (score-sets); panel (a) draws its histograms.
        precision: figure 4b's fidelity table (fig4b-fidelity).
        alphas: panel (a)'s α.
        fig4b_alpha: panel (b)'s fixed α.
        betas: panel (b)'s β.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from scipy.stats import spearmanr

    per_image, fidelity = pd.read_csv(scores), pd.read_csv(precision)
    rows = []
    for a in alphas:
        h = paper.hardness_of(per_image, cell_name("hardness", a, 0.0))["hardness"]
        for statistic, value in (("median_hardness", h.median()), ("mean_hardness", h.mean())):
            rows.append(
                {
                    "panel": "a",
                    "space": "classifier",
                    "alpha": a,
                    "beta": 0.0,
                    "statistic": statistic,
                    "value": float(value),
                    "n": len(h),
                }
            )
    for metric in paper.FIG4B_METRICS:
        for space, table in fidelity[fidelity["metric"] == metric].groupby("space", sort=False):
            table = table.set_index("beta")
            missing = [b for b in betas if b not in table.index]
            if missing:
                raise ValueError(
                    f"{precision} has no {metric} in the {space} space for β = {missing} at α = {fig4b_alpha:g}"
                )
            table = table.loc[betas]
            rho = float(spearmanr(betas, table["value"]).statistic) if len(betas) > 2 else float("nan")
            for b, row in table.iterrows():
                rows.append(
                    {
                        "panel": "b",
                        "space": space,
                        "alpha": fig4b_alpha,
                        "beta": b,
                        "statistic": metric,
                        "value": row["value"],
                        "low": row["low"],
                        "high": row["high"],
                        "n": int(row["n"]),
                    }
                )
            rows.append(
                {
                    "panel": "b",
                    "space": space,
                    "alpha": fig4b_alpha,
                    "beta": np.nan,
                    "statistic": f"spearman_{metric}_vs_beta",
                    "value": rho,
                    "n": len(betas),
                }
            )
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig4(csv, scores, out)


def fig5(*, baseline: str, guided: str, data: str, pairs: int, out: str, csv: str) -> None:
    """Figure 5: guided and baseline samples from identical seeds.

    Args:
        baseline: the baseline sample set.
        guided: the guided sample set (the baseline's first seeds).
        data: a prepared split: the (C, H, W) of the samples.
        pairs: how many pairs.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    base, guide = _load(baseline, image_shape(data)), _load(guided, image_shape(data))
    _check_pairs(base, guide, pairs)
    atomic_to_csv(pd.DataFrame(_pairs_rows(base, range(pairs))), csv)
    paper.draw_fig5(csv, base["images"], guide["images"], out)


def fig6(*, baseline: str, guided: str, data: str, classes: list[int], per_class: int, out: str, csv: str) -> None:
    """Figure 6: for each shown class, baseline samples beside the guided ones of the same seeds.

    Args:
        baseline: the baseline sample set.
        guided: the guided sample set.
        data: a prepared split: the (C, H, W) of the samples.
        classes: the classes shown.
        per_class: samples per class and set.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    base, guide = _load(baseline, image_shape(data)), _load(guided, image_shape(data))
    paired = min(len(base["labels"]), len(guide["labels"]))
    _check_pairs(base, guide, paired)
    rows = []
    for c in classes:
        rows += _pairs_rows(base, np.flatnonzero(base["labels"][:paired] == c)[:per_class])
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig6(csv, base["images"], guide["images"], classes, base["class_names"], per_class, out)


def fig7(*, metrics: list[str], title: str, out: str, csv: str) -> None:
    """Figures 7 and 17: hardness, AvgkNN and LOF distributions of real (held-out), baseline and
    guided images, one row of panels per feature space.

    Args:
        metrics: per-image metrics tables (collect-metrics), one per space; the panels' histograms.
        title: the figure's title.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    rows = []
    for path in metrics:
        table = pd.read_csv(path)
        extractor = str(table["extractor"].iloc[0])
        for metric in paper.METRIC_LABELS:
            sub = table[table["metric"] == metric]
            for name in _set_order(sub["set"]):
                v = sub[sub["set"] == name]["value"]
                rows.append(
                    {
                        "extractor": extractor,
                        "metric": metric,
                        "set": name,
                        "median": float(v.median()),
                        "mean": float(v.mean()),
                        "q90": float(v.quantile(0.9)),
                        "n": len(v),
                    }
                )
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig7(csv, metrics, title, out)


def _set_order(sets: pd.Series) -> list[str]:
    """Real, baseline, guided and GAN first, then any other set by name."""
    order = ["real", "baseline", "guided", "gan"]
    present = set(sets)
    return [s for s in order if s in present] + sorted(present - set(order))


def fig8(*, pairs: str, guided: str, train: str, num_reference: int | None, show: int, out: str, csv: str) -> None:
    """Figure 8: the globally closest guided–training pairs.

    Args:
        pairs: the memorization search's closest pairs.
        guided: the guided sample set.
        train: the prepared training split (the reference images).
        num_reference: the reference subset's size (evaluation.num_reference).
        show: how many pairs.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    reference, samples = _reference_and_guided(train, num_reference, guided)
    atomic_to_csv(pd.read_csv(pairs).head(show), csv)
    paper.draw_fig8(csv, samples["images"], reference, out)


def fig9(*, neighbours: str, guided: str, train: str, num_reference: int | None, show: int, out: str, csv: str) -> None:
    """Figure 9: guided samples with their nearest training images and labels; samples whose
    nearest neighbour carries another label come first.

    Args:
        neighbours: the memorization search's nearest neighbours of each guided sample.
        guided: the guided sample set.
        train: the prepared training split (the reference images).
        num_reference: the reference subset's size (evaluation.num_reference).
        show: how many samples.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    reference, samples = _reference_and_guided(train, num_reference, guided)
    table = pd.read_csv(neighbours)
    nearest = table[table["rank"] == 0].set_index("guided_index")
    differs = nearest["reference_label"] != nearest["guided_label"]
    other, same = nearest.index[differs], nearest.index[~differs]
    chosen = list(other[:show]) + list(same[: max(0, show - len(other))])
    atomic_to_csv(table[table["guided_index"].isin(chosen)], csv)
    fraction = float(differs.mean())
    paper.draw_fig9(csv, samples["images"], samples["labels"], samples["class_names"], reference, fraction, out)


def _reference_and_guided(train: str, num_reference: int | None, guided: str) -> tuple[np.ndarray, dict]:
    """The memorization figures' images: the reference subset of the training split, and the guided
    set checked against its (C, H, W)."""
    from lowdensity.stages.evaluation import load_image_set

    reference, _ = load_image_set("reference", train, num_reference)
    return reference, _load(guided, reference.shape[1:])


def fig10(
    *, cells: list[str], scores: str, data: str, alphas: list[float], beta: float, seeds: int, out: str, csv: str
) -> None:
    """Figure 10: progressive α for fixed seeds (one row per seed).

    Args:
        cells: the cells' sample files, in the order of `alphas`.
        scores: the cells' hardness table (score-sets).
        data: a prepared split: the (C, H, W) of the samples.
        alphas: the columns' α.
        beta: the fixed β.
        seeds: how many seeds (rows).
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    samples = {Path(p).stem: _load(p, image_shape(data)) for p in cells}
    per_image = pd.read_csv(scores)
    rows = []
    for a in alphas:
        name = cell_name("hardness", a, beta)
        cell, table = samples[name], paper.hardness_of(per_image, name).set_index("index")
        for s in range(seeds):
            rows.append(
                {
                    "alpha": a,
                    "beta": beta,
                    "index": s,
                    "seed": int(cell["seeds"][s]),
                    "label": int(cell["labels"][s]),
                    "hardness": float(table.loc[s, "hardness"]),
                }
            )
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig10(csv, {name: cell["images"] for name, cell in samples.items()}, out)


def figA5(*, scores: str, alphas: list[float], beta: float, out: str, csv: str) -> None:
    """Appendix A.5: hardness under Eq. 4's loss and the softmax loss at the same weights, beside
    the baseline samples of the same seeds.

    Args:
        scores: the cells' hardness table (score-sets); the panels' histograms.
        alphas: the panels' α.
        beta: the fixed β.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    per_image = pd.read_csv(scores)
    baseline = paper.hardness_of(per_image, "baseline")
    rows = []
    for a in alphas:
        sets = {loss: paper.hardness_of(per_image, cell_name(loss, a, beta)) for loss in ("hardness", "softmax")}
        sets = {"baseline": baseline[baseline["index"] < len(sets["hardness"])], **sets}
        for name, table in sets.items():
            h = table["hardness"]
            rows.append(
                {
                    "alpha": a,
                    "beta": beta,
                    "loss": name,
                    "median_hardness": float(h.median()),
                    "mean_hardness": float(h.mean()),
                    "classifier_accuracy": float(table["correct"].mean()),
                    "n": len(h),
                }
            )
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_figA5(csv, scores, out)


def fig11(*, nll: str, metrics: list[str], correlation: str, out: str, csv: str) -> None:
    """Figure 11: the correlation of NLL with each density metric (every space), and the scatter
    plots of the held-out images in the first space.

    Args:
        nll: held-out images' NLL bound (nll).
        metrics: the real set's per-image metrics, one table per space; the first is drawn.
        correlation: the correlations' table (every space).
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.stages.evaluation import nll_correlation

    nll_correlation(nll, metrics, correlation)
    bound = pd.read_csv(nll).set_index("index")
    per_image = pd.read_csv(metrics[0])
    rows = []
    for metric in paper.METRIC_LABELS:
        real = per_image[(per_image["set"] == "real") & (per_image["metric"] == metric)].set_index("index")
        joined = bound.join(real["value"], how="inner")
        rows += [
            {"index": int(i), "metric": metric, "value": float(v), "bpd": float(b)}
            for i, v, b in zip(joined.index, joined["value"], joined["bpd"])
        ]
    atomic_to_csv(pd.DataFrame(rows), csv)
    paper.draw_fig11(csv, correlation, str(per_image["extractor"].iloc[0]), str(bound["chain"].iloc[0]), out)


def figA7(
    *,
    params: dict,
    reference: str,
    neighbours: str,
    sets: dict[str, dict[int, str]],
    fidelity: str,
    out: str,
    csv: str,
    device: str = "auto",
) -> None:
    """Appendix A.7: precision against the number of DDIM steps, baseline and guided.

    Args:
        params: {"precision_k": k}.
        reference: the reference features (first space).
        neighbours: the reference's own neighbours (reference-neighbours).
        sets: sampler → number of steps → that DDIM set's features.
        fidelity: the precision table.
        out: the figure (PDF).
        csv: the figure's numbers.
        device: where the ball tests run (auto: CUDA when present).
    """
    from lowdensity.stages.evaluation import fidelity_vs_steps

    by_steps = {(sampler, steps): path for sampler, paths in sets.items() for steps, path in paths.items()}
    fidelity_vs_steps(params, reference, neighbours, by_steps, fidelity, device)
    atomic_to_csv(pd.read_csv(fidelity), csv)
    paper.draw_figA7(csv, out)


def figD1(*, accuracy: dict[str, str], overrides: dict[str, dict], out: str, csv: str) -> None:
    """Figure D1: the discriminator study, one tidy row per (variant, condition, timestep) with
    accuracy, ROC-AUC, cross-entropy and n: held-out accuracy against t for every variant, and at t = 0
    with the dark-background cue removed from both sets.

    Args:
        accuracy: variant name → its accuracy table (the default discriminator's as 'default').
        overrides: variant name → its discriminator overrides.
        out: the figure (PDF).
        csv: the study's table.
    """
    table = pd.concat(
        [
            pd.read_csv(path).assign(variant=name, overrides=json.dumps(overrides.get(name, {}), sort_keys=True))
            for name, path in accuracy.items()
        ],
        ignore_index=True,
    )
    columns = ["variant", "overrides", "condition", "timestep", "accuracy", "roc_auc", "loss", "n"]
    atomic_to_csv(table[[c for c in columns if c in table.columns]], csv)
    paper.draw_figD1(csv, out)


def figS1(*, table: str, hardness_space: str, out: str, csv: str) -> None:
    """Figure S1: precision against median AvgkNN (each evaluation space) and against median
    hardness (`hardness_space`), and coverage (Naeem et al.) against median AvgkNN (each space),
    one curve per sampler over its strengths, the baseline a point.

    Args:
        table: the samplers' table (samplers-table).
        hardness_space: the space whose hardness is drawn.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    points = pd.read_csv(table).sort_values(["sampler", "strength"])
    spaces = list(points["space"].unique())
    panels = [(space, "median_avgknn", "median AvgkNN", "precision") for space in spaces]
    panels.append((hardness_space, "median_hardness", "median hardness", "precision"))
    panels += [(space, "median_avgknn", "median AvgkNN", "coverage") for space in spaces]
    shown = [
        group.assign(panel=f"{space}: {x_label} / {y_key}", x=group[x_key], y=group[y_key], y_metric=y_key)
        for space, x_key, x_label, y_key in panels
        for _, group in points[points["space"] == space].groupby("sampler", sort=False)
    ]
    columns = ["panel", "sampler", "strength", "space", "x", "y", "y_metric"]
    atomic_to_csv(pd.concat(shown, ignore_index=True)[columns], csv)
    paper.draw_figS1(csv, out)
