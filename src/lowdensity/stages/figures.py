"""The figure stages: each reads the run's files, writes the figure's tidy CSV (the numbers it
shows) and draws the PDF from that CSV with `lowdensity.figures.paper`.

Image figures also read the sample files the CSV's rows index into (the images are data, not
numbers to recompute); histogram panels read the per-image tidy table their rule already takes.
"""

from __future__ import annotations

from lowdensity.data import image_shape


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
    from lowdensity.figures.paper import fig1_overview

    fig1_overview(metrics, load_split(real).images, samples, per_panel, out, csv)


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
    """Figure 3: the α × β grid of samples from one seed of each shown class.

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
    from lowdensity.figures.paper import fig3_grid

    fig3_grid(cells, image_shape(data), alphas, betas, classes, scores, out, csv)


def fig4(
    *, scores: str, precision: str, alphas: list[float], fig4b_alpha: float, betas: list[float], out: str, csv: str
) -> None:
    """Figure 4: (a) hardness per α at β = 0; (b) precision and PRD F1/8 per β at a fixed α.

    Args:
        scores: the cells' hardness table (score-sets).
        precision: figure 4b's fidelity table (fig4b-fidelity).
        alphas: panel (a)'s α.
        fig4b_alpha: panel (b)'s fixed α.
        betas: panel (b)'s β.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.figures.paper import fig4_hardness_precision

    fig4_hardness_precision(scores, precision, alphas, fig4b_alpha, betas, out, csv)


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
    from lowdensity.figures.paper import fig5_pairs

    fig5_pairs(baseline, guided, image_shape(data), pairs, out, csv)


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
    from lowdensity.figures.paper import fig6_classes

    fig6_classes(baseline, guided, image_shape(data), classes, per_class, out, csv)


def fig7(*, metrics: list[str], title: str, out: str, csv: str) -> None:
    """Figures 7 and 17: hardness, AvgkNN and LOF distributions per set, one row per feature space.

    Args:
        metrics: per-image metrics tables (collect-metrics), one per space.
        title: the figure's title.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.figures.paper import fig7_density

    fig7_density(metrics, out, csv, title)


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
    from lowdensity.figures.paper import fig8_closest_pairs
    from lowdensity.stages.evaluation import load_image_set

    reference_images, _ = load_image_set("reference", train, num_reference)
    fig8_closest_pairs(pairs, guided, reference_images, show, out, csv)


def fig9(*, neighbours: str, guided: str, train: str, num_reference: int | None, show: int, out: str, csv: str) -> None:
    """Figure 9: guided samples with their nearest training images and labels.

    Args:
        neighbours: the memorization search's nearest neighbours of each guided sample.
        guided: the guided sample set.
        train: the prepared training split (the reference images).
        num_reference: the reference subset's size (evaluation.num_reference).
        show: how many samples.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.figures.paper import fig9_neighbours
    from lowdensity.stages.evaluation import load_image_set

    reference_images, _ = load_image_set("reference", train, num_reference)
    fig9_neighbours(neighbours, guided, reference_images, show, out, csv)


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
    from lowdensity.figures.paper import fig10_progressive

    fig10_progressive(cells, image_shape(data), alphas, beta, seeds, scores, out, csv)


def figA5(*, scores: str, alphas: list[float], beta: float, out: str, csv: str) -> None:
    """Appendix A.5: hardness under Eq. 4's loss and the softmax loss at the same weights.

    Args:
        scores: the cells' hardness table (score-sets).
        alphas: the panels' α.
        beta: the fixed β.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.figures.paper import figA5_ablation

    figA5_ablation(scores, alphas, beta, out, csv)


def fig11(*, nll: str, metrics: list[str], correlation: str, out: str, csv: str) -> None:
    """Figure 11: the correlation of NLL with each density metric (every space), and its scatter
    plots in the first space.

    Args:
        nll: held-out images' NLL bound (nll).
        metrics: the real set's per-image metrics, one table per space; the first is drawn.
        correlation: the correlations' table (every space).
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.figures.paper import fig11_nll
    from lowdensity.stages.evaluation import nll_correlation

    nll_correlation(nll, metrics, correlation)
    fig11_nll(nll, metrics[0], correlation, out, csv)


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
    from lowdensity.figures.paper import figA7_steps
    from lowdensity.stages.evaluation import fidelity_vs_steps

    by_steps = {(sampler, steps): path for sampler, paths in sets.items() for steps, path in paths.items()}
    fidelity_vs_steps(params, reference, neighbours, by_steps, fidelity, device)
    figA7_steps(fidelity, out, csv)


def figD1(*, accuracy: dict[str, str], overrides: dict[str, dict], out: str, csv: str) -> None:
    """Figure D1: the discriminator study's held-out accuracy per variant and timestep.

    Args:
        accuracy: variant name → its accuracy table (the default discriminator's as 'default').
        overrides: variant name → its discriminator overrides.
        out: the figure (PDF).
        csv: the study's table.
    """
    from lowdensity.figures.paper import figD1_discriminator_ablation

    figD1_discriminator_ablation(accuracy, overrides, csv, out)


def figS1(*, table: str, hardness_space: str, out: str, csv: str) -> None:
    """Figure S1: precision against density per sampler over its strengths.

    Args:
        table: the samplers' table (samplers-table).
        hardness_space: the space whose hardness is drawn.
        out: the figure (PDF).
        csv: the figure's numbers.
    """
    from lowdensity.stages.sampler_comparison import figure_s1

    figure_s1(table, hardness_space, out, csv)
