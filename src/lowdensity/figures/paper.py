"""Drawing the paper's figures, each from its tidy table (the CSV its stage wrote).

A function here reads the figure's CSV and draws it: every number it prints or plots is a value
of that table, so a reader can restyle a figure without rerunning anything. What a table cannot
hold is passed beside it and named so: the images the table's rows index into (image figures),
and the per-image table a histogram bins (figures 4a, 7, 17 and A.5: `results/guidance/
hardness.csv`, `results/metrics/<space>.csv`). Binning and axis limits are drawing choices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lowdensity.io import atomic_path
from lowdensity.layout import cell_name

FIG4B_METRICS = {
    "improved_precision": "improved precision (k-NN balls)",
    "prd_f1/8": "PRD F1/8 (precision, Sajjadi et al.)",
}
METRIC_LABELS = {"hardness": "hardness score", "avgknn": "AvgkNN distance (k = 5)", "lof": "local outlier factor"}
SAMPLER_LABELS = {
    "baseline": "baseline (Eq. 2)",
    "paper": "Sehwag et al. α/β",
    "boost_and_skip": "Boost-and-Skip",
    "self_guided": "self-guided minority",
    "minority_guidance": "minority guidance",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_pdf: str) -> None:
    with atomic_path(out_pdf, suffix=".pdf") as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    _plt().close(fig)


def _show(ax, image: np.ndarray) -> None:
    img = image.transpose(1, 2, 0)
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _in_order(values) -> list:
    """The distinct values of a column in the order the table lists them."""
    return list(dict.fromkeys(values))


def hardness_of(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one sample set in the per-image hardness table (`score-sets`), or an error naming it."""
    rows = scores[scores["set"] == name]
    if rows.empty:
        raise ValueError(f"the score table has no rows for sample set {name!r}")
    return rows


def draw_fig3(table_csv: str, cells: dict[str, np.ndarray], out_pdf: str) -> None:
    """α (rows) × β (columns) for one seed of each shown class. `cells`: a cell's name → its images."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    classes, alphas, betas = (_in_order(table[key]) for key in ("class", "alpha", "beta"))
    fig, axes = plt.subplots(
        len(alphas),
        len(betas) * len(classes),
        figsize=(1.0 * len(betas) * len(classes) + 0.6, 1.0 * len(alphas) + 0.6),
        squeeze=False,
    )
    for ci, c in enumerate(classes):
        rows = table[table["class"] == c]
        for row in rows.to_dict("records"):
            ai, bi = alphas.index(row["alpha"]), betas.index(row["beta"])
            ax = axes[ai][ci * len(betas) + bi]
            _show(ax, cells[cell_name("hardness", row["alpha"], row["beta"])][row["index"]])
            if ai == 0:
                ax.set_title(f"β={row['beta']:g}", fontsize=7)
            if ci == 0 and bi == 0:
                ax.set_ylabel(f"α={row['alpha']:g}", fontsize=7)
        axes[0][ci * len(betas)].annotate(
            rows["class_name"].iloc[-1], (0, 1.35), xycoords="axes fraction", fontsize=8, weight="bold"
        )
    fig.suptitle("Figure 3: α × β grid, one seed per class (rows α, columns β)", fontsize=9, y=1.04)
    _save(fig, out_pdf)


def draw_fig4(table_csv: str, scores_csv: str, out_pdf: str) -> None:
    """(a) hardness distribution per α at β = 0 (histograms of `scores_csv`, the per-image table);
    (b) improved precision and PRD F1/8 per β at the fixed α, with bootstrap intervals and the
    Spearman correlation of each with β."""
    plt = _plt()
    table, scores = pd.read_csv(table_csv), pd.read_csv(scores_csv)
    fig, axes = plt.subplots(1, 1 + len(FIG4B_METRICS), figsize=(13, 3.6))
    ax_a = axes[0]
    medians = table[(table["panel"] == "a") & (table["statistic"] == "median_hardness")]
    alphas = medians["alpha"].tolist()
    all_h = pd.concat([hardness_of(scores, cell_name("hardness", a, 0.0))["hardness"] for a in alphas])
    bins = np.linspace(np.percentile(all_h, 0.5), np.percentile(all_h, 99.5), 40)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))
    for a, median, colour in zip(alphas, medians["value"], colours):
        h = hardness_of(scores, cell_name("hardness", a, 0.0))["hardness"]
        ax_a.hist(
            h, bins=bins, histtype="step", density=True, color=colour, lw=1.5, label=f"α={a:g} (median {median:.1f})"
        )
    ax_a.set_xlabel("hardness score H(x, y) (classifier embedding)")
    ax_a.set_ylabel("density")
    ax_a.set_title("(a) increasing α at β = 0", fontsize=9)
    ax_a.legend(fontsize=7)
    panel_b = table[table["panel"] == "b"]
    fig4b_alpha = float(panel_b["alpha"].iloc[0])
    for ax, (metric, label) in zip(axes[1:], FIG4B_METRICS.items()):
        for space in _in_order(panel_b[panel_b["statistic"] == metric]["space"]):
            rows = panel_b[(panel_b["space"] == space) & (panel_b["statistic"] == metric)]
            rho = float(
                panel_b[(panel_b["space"] == space) & (panel_b["statistic"] == f"spearman_{metric}_vs_beta")][
                    "value"
                ].iloc[0]
            )
            ax.errorbar(
                rows["beta"].tolist(),
                rows["value"],
                yerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]],
                fmt="o-",
                capsize=3,
                label=f"{space} (Spearman {rho:+.2f})" if np.isfinite(rho) else f"{space} (constant in β)",
            )
        ax.set_xlabel("β")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"(b) increasing β at α = {fig4b_alpha:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 4: effect of α and β (bars: bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_fig5(table_csv: str, baseline: np.ndarray, guided: np.ndarray, out_pdf: str) -> None:
    """Guided (top) and baseline (bottom) samples of the table's pairs (identical seeds)."""
    plt = _plt()
    num_pairs = len(pd.read_csv(table_csv))
    cols = min(num_pairs, 12)
    blocks = int(np.ceil(num_pairs / cols))
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(cols * 0.8, blocks * 1.75), squeeze=False)
    for i in range(blocks * cols):
        r, c = divmod(i, cols)
        for k, (images, name) in enumerate([(guided, "guided"), (baseline, "baseline")]):
            ax = axes[2 * r + k][c]
            if i < num_pairs:
                _show(ax, images[i])
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("Figure 5: guided (top) vs baseline (bottom), identical seeds", fontsize=9)
    _save(fig, out_pdf)


def draw_fig6(
    table_csv: str,
    baseline: np.ndarray,
    guided: np.ndarray,
    classes: list[int],
    class_names: list[str],
    per_class: int,
    out_pdf: str,
) -> None:
    """For each shown class: the table's baseline samples (left) and the guided samples of the
    same seeds (right), on a square grid of `per_class` places."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    side = int(np.ceil(np.sqrt(per_class)))
    fig, axes = plt.subplots(
        side * len(classes), 2 * side + 1, figsize=((2 * side + 1) * 0.7, side * len(classes) * 0.75), squeeze=False
    )
    for ci, c in enumerate(classes):
        idx = table[table["label"] == c]["index"].to_numpy()
        for j in range(side * side):
            r, col = divmod(j, side)
            for offset, images in [(0, baseline), (side + 1, guided)]:
                ax = axes[ci * side + r][offset + col]
                _show(ax, images[idx[j]]) if j < len(idx) else ax.axis("off")
            axes[ci * side + r][side].axis("off")
        axes[ci * side][0].set_title(f"{class_names[c]}: baseline", fontsize=7, loc="left")
        axes[ci * side][side + 1].set_title("guided", fontsize=7, loc="left")
    fig.subplots_adjust(hspace=0.45)
    fig.suptitle("Figure 6: baseline (left) vs guided (right), same seeds", fontsize=9)
    _save(fig, out_pdf)


def draw_fig10(table_csv: str, cells: dict[str, np.ndarray], out_pdf: str) -> None:
    """One row per seed, one column per α (increasing), β fixed. `cells`: a cell's name → its images."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    alphas, beta = _in_order(table["alpha"]), float(table["beta"].iloc[0])
    num_seeds = int((table["alpha"] == alphas[0]).sum())
    fig, axes = plt.subplots(num_seeds, len(alphas), figsize=(len(alphas) * 0.9, num_seeds * 0.9 + 0.4), squeeze=False)
    for ai, a in enumerate(alphas):
        images = cells[cell_name("hardness", a, beta)]
        for s, index in enumerate(table[table["alpha"] == a]["index"]):
            _show(axes[s][ai], images[index])
        axes[0][ai].set_title(f"α={a:g}", fontsize=7)
    fig.suptitle(f"Figure 10: progressive α (β = {beta:g}), one row per seed", fontsize=9)
    _save(fig, out_pdf)


def draw_figA5(table_csv: str, scores_csv: str, out_pdf: str) -> None:
    """Hardness distributions (histograms of `scores_csv`, the per-image table) under Eq. 4's loss
    and the softmax loss at matched α, β, beside the baseline samples of the same seeds."""
    plt = _plt()
    table, scores = pd.read_csv(table_csv), pd.read_csv(scores_csv)
    alphas = _in_order(table["alpha"])
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 3), squeeze=False)
    baseline = hardness_of(scores, "baseline")
    for ax, a in zip(axes[0], alphas):
        rows = table[table["alpha"] == a]
        beta = float(rows["beta"].iloc[0])
        sets = {loss: hardness_of(scores, cell_name(loss, a, beta)) for loss in ("hardness", "softmax")}
        sets = {"baseline": baseline[baseline["index"] < len(sets["hardness"])], **sets}
        all_h = pd.concat([s["hardness"] for s in sets.values()])
        bins = np.linspace(np.percentile(all_h, 0.5), np.percentile(all_h, 99.5), 35)
        for row in rows.to_dict("records"):
            label = f"{row['loss']} (median {row['median_hardness']:.1f}, acc {row['classifier_accuracy']:.2f})"
            ax.hist(sets[row["loss"]]["hardness"], bins=bins, histtype="step", density=True, lw=1.5, label=label)
        ax.set_title(f"α = {a:g}, β = {beta:g}", fontsize=9)
        ax.set_xlabel("hardness score")
        ax.legend(fontsize=6)
    fig.suptitle("Appendix A.5: hardness loss vs softmax loss", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_fig7(table_csv: str, metrics_csvs: list[str], title: str, out_pdf: str) -> None:
    """Hardness, AvgkNN and LOF distributions per set (histograms of each space's per-image
    table in `metrics_csvs`), one row of panels per feature space (figure 7: the first; 17: all)."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    per_image = [pd.read_csv(p) for p in metrics_csvs]
    fig, axes = plt.subplots(len(per_image), 3, figsize=(11, 3 * len(per_image)), squeeze=False)
    for ax_row, values in zip(axes, per_image):
        extractor = str(values["extractor"].iloc[0])
        for ax, metric in zip(ax_row, METRIC_LABELS):
            sub = values[values["metric"] == metric]
            lo, hi = np.percentile(sub["value"], 0.5), np.percentile(sub["value"], 99.5)
            bins = np.linspace(lo, hi, 40)
            shown = table[(table["extractor"] == extractor) & (table["metric"] == metric)]
            for name, median in zip(shown["set"], shown["median"]):
                v = sub[sub["set"] == name]["value"]
                ax.hist(
                    v.clip(lo, hi),
                    bins=bins,
                    histtype="step",
                    density=True,
                    lw=1.5,
                    label=f"{name} (median {median:.3g})",
                )
            ax.set_xlabel(METRIC_LABELS[metric], fontsize=8)
            ax.legend(fontsize=6)
        ax_row[0].set_ylabel(extractor, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_fig8(table_csv: str, guided: np.ndarray, reference: np.ndarray, out_pdf: str) -> None:
    """The table's closest guided–training pairs: guided (left) and training image (right)."""
    plt = _plt()
    pairs = pd.read_csv(table_csv)
    cols = 4
    rows_n = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows_n, 2 * cols, figsize=(2 * cols * 0.9, rows_n * 1.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, pair in enumerate(pairs.itertuples()):
        row, col = divmod(r, cols)
        _show(axes[row][2 * col], guided[pair.guided_index])
        _show(axes[row][2 * col + 1], reference[pair.reference_index])
        axes[row][2 * col].set_title(f"d={pair.distance:.2f}", fontsize=6)
    fig.suptitle("Figure 8: closest synthetic (left) – real (right) pairs", fontsize=9)
    _save(fig, out_pdf)


def draw_fig9(
    table_csv: str,
    guided: np.ndarray,
    guided_labels: np.ndarray,
    class_names: list[str],
    reference: np.ndarray,
    other_class_fraction: float,
    out_pdf: str,
) -> None:
    """The table's guided samples (first column) with their nearest training images and labels,
    those whose nearest neighbour carries another label first. `other_class_fraction`: the share
    of all guided samples whose nearest neighbour is of another class (the caption's number)."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    nearest = table[table["rank"] == 0]
    other = nearest["reference_label"] != nearest["guided_label"]
    chosen = nearest[other]["guided_index"].tolist() + nearest[~other]["guided_index"].tolist()
    k = int(table["rank"].max()) + 1
    fig, axes = plt.subplots(len(chosen), k + 1, figsize=((k + 1) * 0.9, len(chosen) * 1.0), squeeze=False)
    for r, g in enumerate(chosen):
        _show(axes[r][0], guided[g])
        axes[r][0].set_title(f"{class_names[guided_labels[g]]}", fontsize=6, color="blue")
        for _, nb in table[table["guided_index"] == g].sort_values("rank").iterrows():
            ax = axes[r][int(nb["rank"]) + 1]
            _show(ax, reference[int(nb["reference_index"])])
            ax.set_title(
                class_names[int(nb["reference_label"])],
                fontsize=6,
                color="red" if nb["reference_label"] != nb["guided_label"] else "black",
            )
    fig.suptitle(
        f"Figure 9: guided samples and their {k} nearest real images "
        f"({other_class_fraction:.1%} of guided samples have a nearest neighbour of another class)",
        fontsize=8,
    )
    _save(fig, out_pdf)


def draw_fig1(table_csv: str, images: dict[str, np.ndarray], per_panel: int, out_pdf: str) -> None:
    """The table's panels (real images of the highest and lowest hardness, then each generator's
    first samples). `images`: a panel's title → the images its rows index into."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    panels = _in_order(table["panel"])
    side = int(np.ceil(np.sqrt(per_panel)))
    fig, axes = plt.subplots(
        side, len(panels) * (side + 1) - 1, figsize=(len(panels) * (side + 1) * 0.6, side * 0.7 + 0.5), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for p, title in enumerate(panels):
        for j, idx in enumerate(table[table["panel"] == title]["index"].to_numpy()[: side * side]):
            r, c = divmod(j, side)
            ax = axes[r][p * (side + 1) + c]
            ax.axis("on")
            _show(ax, images[title][int(idx)])
        axes[0][p * (side + 1)].set_title(title, fontsize=7, loc="left")
    fig.suptitle("Figure 1: real images from low- and high-density regions, and samples of each generator", fontsize=9)
    _save(fig, out_pdf)


def draw_fig11(table_csv: str, correlation_csv: str, extractor: str, chain: str, out_pdf: str) -> None:
    """NLL (bits/dim) of held-out images against hardness, AvgkNN and LOF in `extractor`'s space,
    each titled with its correlations (`correlation_csv`); `chain`: the bound's chain, for the label."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    corr = pd.read_csv(correlation_csv)
    corr = corr[corr["extractor"] == extractor].set_index("metric")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, metric in zip(axes, METRIC_LABELS):
        points = table[table["metric"] == metric]
        ax.scatter(points["value"], points["bpd"], s=6, alpha=0.6)
        ax.set_xlabel(f"{METRIC_LABELS[metric]} ({extractor})", fontsize=8)
        ax.set_title(
            f"Spearman {corr.loc[metric, 'spearman']:.2f}, Pearson {corr.loc[metric, 'pearson']:.2f}", fontsize=8
        )
    axes[0].set_ylabel(f"NLL (bits/dim, {chain})", fontsize=8)
    fig.suptitle("Figure 11: diffusion-model NLL vs density metrics (held-out images)", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_figA7(table_csv: str, out_pdf: str) -> None:
    """Appendix A.7: precision against the number of DDIM steps, baseline and guided."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for sampler, rows in table.groupby("sampler"):
        rows = rows.sort_values("steps")
        ax.plot(rows["steps"], rows["precision"], "o-", label=sampler)
    ax.set_xscale("log")
    ax.set_xlabel("DDIM sampling steps")
    ax.set_ylabel(f"precision (k = {int(table['k'].iloc[0])})")
    ax.legend()
    ax.set_title("Appendix A.7: fidelity vs sampling steps", fontsize=9)
    fig.tight_layout()
    _save(fig, out_pdf)


def _timestep_axis(ax, timesteps) -> None:
    """A discriminator's evaluation timesteps on a symmetric log axis, with chance (0.5) marked."""
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xscale("symlog", linthresh=10)
    ticks = sorted({int(t) for t in timesteps})
    ax.set_xlim(0, max(ticks) * 1.1)
    ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
    ax.set_xlabel("timestep t of x_t (symmetric log scale)")


def draw_figD1(table_csv: str, out_pdf: str) -> None:
    """The discriminator study: held-out accuracy against t for every variant (left), and at the
    lowest t with the dark-background cue removed from both sets (right)."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    variants = _in_order(table["variant"])
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    colours = plt.cm.tab10(np.arange(len(variants)) % 10)
    conditions = _in_order(table["condition"])
    width = 0.8 / len(variants)
    for i, (name, colour) in enumerate(zip(variants, colours)):
        rows = table[(table["variant"] == name) & (table["condition"] == "as is")].sort_values("timestep")
        ax_t.plot(rows["timestep"], rows["accuracy"], "o-", color=colour, ms=3, label=name)
        at0 = table[(table["variant"] == name) & (table["timestep"] == table["timestep"].min())]
        at0 = at0.set_index("condition").reindex(conditions)
        ax_c.bar(
            np.arange(len(conditions)) + (i - (len(variants) - 1) / 2) * width, at0["accuracy"], width, color=colour
        )
    _timestep_axis(ax_t, table["timestep"])
    ax_t.set_ylabel("held-out accuracy (real vs baseline)")
    ax_t.set_title("(a) accuracy against noise level", fontsize=9)
    ax_t.legend(fontsize=7)
    ax_c.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_c.set_xticks(np.arange(len(conditions)), conditions, fontsize=7)
    ax_c.set_ylim(0.4, 1.0)
    ax_c.set_title(f"(b) at t = {int(table['timestep'].min())}, cue removed from both sets", fontsize=9)
    fig.suptitle("Figure D1: what the real-vs-synthetic discriminator H′ needs to see the difference", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_figD2(table_csv: str, extractor: str, out_pdf: str) -> None:
    """The fidelity study (`stages.fidelity_study`): (a) the precision gain of the largest β over
    β = 0 against each rung's H′ ROC-AUC at t = 0, one line per (β form, α), with intervals;
    (b) every rung's H′ ROC-AUC against t; (c) precision against β per rung at the largest α."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    h_prime = table[(table["set"] == "discriminator") & (table["metric"] == "roc_auc")]
    auc0 = h_prime[h_prime["timestep"] == h_prime["timestep"].min()].set_index("rung")["value"]
    gains = table[(table["set"] == "gain") & (table["space"] == extractor)]
    top = gains["beta"].max()
    cells = table[(table["set"] == "cell") & (table["space"] == extractor) & (table["metric"] == "improved_precision")]
    forms = _in_order(gains["form"])
    alphas = sorted(gains["alpha"].unique())
    colours = dict(zip(forms, plt.cm.tab10(np.arange(len(forms)))))
    rungs = sorted(table["rung"].unique())
    fig, (ax_g, ax_t, ax_b) = plt.subplots(1, 3, figsize=(13, 3.8))
    for form in forms:
        for alpha, style in zip(alphas, ("--", "-", ":", "-.")):
            rows = gains[(gains["form"] == form) & (gains["alpha"] == alpha) & (gains["beta"] == top)]
            rows = rows.assign(x=rows["rung"].map(auc0)).sort_values("x")
            ax_g.errorbar(
                rows["x"],
                rows["value"],
                yerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]],
                fmt="o" + style,
                color=colours[form],
                ms=4,
                capsize=2,
                label=f"{form}, α = {alpha:g}",
            )
    for rung, x in auc0.items():
        ax_g.annotate(f"step {rung}", (x, 0), textcoords="offset points", xytext=(0, -12), fontsize=6, ha="center")
    ax_g.axhline(0, color="grey", lw=0.8, ls=":")
    ax_g.set_xlabel("H′ held-out ROC-AUC at t = 0 (the rung's distance to real)")
    ax_g.set_ylabel(f"precision gain, β = {top:g} over β = 0")
    ax_g.set_title(f"(a) gain of β in the {extractor} space", fontsize=9)
    ax_g.legend(fontsize=7)
    shades = plt.cm.viridis(np.linspace(0, 0.85, len(rungs)))
    for rung, shade in zip(rungs, shades):
        rows = h_prime[h_prime["rung"] == rung].sort_values("timestep")
        ax_t.plot(rows["timestep"], rows["value"], "o-", color=shade, ms=3, label=f"step {rung}")
        for form in forms:
            rows = cells[(cells["rung"] == rung) & (cells["alpha"] == max(alphas))]
            rows = rows[(rows["form"] == form) | (rows["beta"] == 0)].sort_values("beta")
            ax_b.errorbar(
                rows["beta"],
                rows["value"],
                yerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]],
                fmt="o-" if form == forms[0] else "s--",
                color=shade,
                ms=3,
                capsize=2,
                label=f"step {rung}, {form}",
            )
    _timestep_axis(ax_t, h_prime["timestep"])
    ax_t.set_ylabel("H′ held-out ROC-AUC")
    ax_t.set_title("(b) what H′ sees, per rung", fontsize=9)
    ax_t.legend(fontsize=7)
    ax_b.set_xlabel("β")
    ax_b.set_ylabel("improved precision")
    ax_b.set_title(f"(c) precision against β at α = {max(alphas):g}", fontsize=9)
    ax_b.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.suptitle("Figure D2: the gain of β against how far each rung is from real", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)


def draw_figS1(table_csv: str, out_pdf: str) -> None:
    """Figure S1: precision or coverage against density per sampler over its strengths (labels:
    strength), one panel per (space, density measure, y metric) of the table."""
    plt = _plt()
    table = pd.read_csv(table_csv)
    panels = _in_order(table["panel"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels):
        rows = table[table["panel"] == panel]
        space, x_label = panel.split(": ", 1)[0], panel.split(": ", 1)[1].rsplit(" / ", 1)[0]
        for sampler, group in rows.groupby("sampler", sort=False):
            style = (
                {"marker": "*", "markersize": 12, "linestyle": "none", "color": "black"}
                if sampler == "baseline"
                else {"marker": "o"}
            )
            ax.plot(group["x"], group["y"], label=SAMPLER_LABELS.get(sampler, sampler), **style)
            if sampler != "baseline":
                for r in group.itertuples():
                    ax.annotate(f"{r.strength:g}", (r.x, r.y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"{space} space", fontsize=9)
        ax.set_xlabel(f"{x_label} (→ lower density)")
        ax.set_ylabel(rows["y_metric"].iloc[0])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fidelity and coverage against density per sampler (labels: strength)", fontsize=9)
    _save(fig, out_pdf)
