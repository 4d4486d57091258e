"""The paper's figures of the guided sampler (3, 4, 5, 6, 10, A5), each drawn from tidy data.

Every function reads sample files and the tidy score tables, writes the figure as PDF and
the exact numbers it shows as a tidy CSV (one row per image or per plotted value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lowdensity.data import read_sample_set
from lowdensity.io import atomic_path, atomic_to_csv
from lowdensity.layout import cell_name


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


def _load(path: str, shape: tuple[int, int, int] | None) -> dict:
    """A sample file's images, labels, seeds and class names, checked against the data's (C, H, W)."""
    data = read_sample_set(path, shape)
    return data | {"class_names": [str(c) for c in data["class_names"]]}


def _hardness_of(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = scores[scores["set"] == name]
    if rows.empty:
        raise ValueError(f"the score table has no rows for sample set {name!r}")
    return rows


def fig3_grid(
    cell_paths: list[str],
    shape: tuple[int, int, int],
    alphas: list[float],
    betas: list[float],
    classes: list[int],
    scores_csv: str,
    out_pdf: str,
    out_csv: str,
) -> None:
    """α (rows) × β (columns) for one seed of each shown class: the first sample of that class."""
    plt = _plt()
    cells = {Path(p).stem: _load(p, shape) for p in cell_paths}
    scores = pd.read_csv(scores_csv)
    fig, axes = plt.subplots(
        len(alphas),
        len(betas) * len(classes),
        figsize=(1.0 * len(betas) * len(classes) + 0.6, 1.0 * len(alphas) + 0.6),
        squeeze=False,
    )
    rows = []
    for ci, c in enumerate(classes):
        for ai, a in enumerate(alphas):
            for bi, b in enumerate(betas):
                name = cell_name("hardness", a, b)
                data = cells[name]
                idx = int(np.flatnonzero(data["labels"] == c)[0])
                ax = axes[ai][ci * len(betas) + bi]
                _show(ax, data["images"][idx])
                h = _hardness_of(scores, name).set_index("index").loc[idx]
                rows.append(
                    {
                        "class": c,
                        "class_name": data["class_names"][c],
                        "alpha": a,
                        "beta": b,
                        "index": idx,
                        "seed": int(data["seeds"][idx]),
                        "hardness": h["hardness"],
                        "predicted": int(h["predicted"]),
                    }
                )
                if ai == 0:
                    ax.set_title(f"β={b:g}", fontsize=7)
                if ci == 0 and bi == 0:
                    ax.set_ylabel(f"α={a:g}", fontsize=7)
        axes[0][ci * len(betas)].annotate(
            data["class_names"][c], (0, 1.35), xycoords="axes fraction", fontsize=8, weight="bold"
        )
    fig.suptitle("Figure 3: α × β grid, one seed per class (rows α, columns β)", fontsize=9, y=1.04)
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


FIG4B_METRICS = {
    "improved_precision": "improved precision (k-NN balls)",
    "prd_f1/8": "PRD F1/8 (precision, Sajjadi et al.)",
}


def fig4_hardness_precision(
    scores_csv: str,
    fidelity_csv: str,
    alphas: list[float],
    fig4b_alpha: float,
    betas: list[float],
    out_pdf: str,
    out_csv: str,
) -> None:
    """(a) hardness distribution per α at β = 0; (b) fidelity per β at α = fig4b_alpha: improved
    precision and PRD F_1/8 (the paper's precision, Sajjadi et al.) in every feature space of
    `fidelity_csv`, with bootstrap intervals, and the Spearman correlation of each with β."""
    from scipy.stats import spearmanr

    plt = _plt()
    scores, fidelity = pd.read_csv(scores_csv), pd.read_csv(fidelity_csv)
    fig, axes = plt.subplots(1, 1 + len(FIG4B_METRICS), figsize=(13, 3.6))
    ax_a = axes[0]
    all_h = pd.concat([_hardness_of(scores, cell_name("hardness", a, 0.0))["hardness"] for a in alphas])
    bins = np.linspace(np.percentile(all_h, 0.5), np.percentile(all_h, 99.5), 40)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))
    rows = []
    for a, colour in zip(alphas, colours):
        h = _hardness_of(scores, cell_name("hardness", a, 0.0))["hardness"]
        ax_a.hist(
            h,
            bins=bins,
            histtype="step",
            density=True,
            color=colour,
            lw=1.5,
            label=f"α={a:g} (median {h.median():.1f})",
        )
        rows.append(
            {
                "panel": "a",
                "space": "classifier",
                "alpha": a,
                "beta": 0.0,
                "statistic": "median_hardness",
                "value": float(h.median()),
                "n": len(h),
            }
        )
        rows.append(
            {
                "panel": "a",
                "space": "classifier",
                "alpha": a,
                "beta": 0.0,
                "statistic": "mean_hardness",
                "value": float(h.mean()),
                "n": len(h),
            }
        )
    ax_a.set_xlabel("hardness score H(x, y) (classifier embedding)")
    ax_a.set_ylabel("density")
    ax_a.set_title("(a) increasing α at β = 0", fontsize=9)
    ax_a.legend(fontsize=7)
    for ax, (metric, label) in zip(axes[1:], FIG4B_METRICS.items()):
        for space, table in fidelity[fidelity["metric"] == metric].groupby("space", sort=False):
            table = table.set_index("beta")
            missing = [b for b in betas if b not in table.index]
            if missing:
                raise ValueError(
                    f"{fidelity_csv} has no {metric} in the {space} space for β = {missing} at α = {fig4b_alpha:g}"
                )
            table = table.loc[betas]
            rho = float(spearmanr(betas, table["value"]).statistic) if len(betas) > 2 else float("nan")
            ax.errorbar(
                betas,
                table["value"],
                yerr=[table["value"] - table["low"], table["high"] - table["value"]],
                fmt="o-",
                capsize=3,
                label=f"{space} (Spearman {rho:+.2f})" if np.isfinite(rho) else f"{space} (constant in β)",
            )
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
        ax.set_xlabel("β")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"(b) increasing β at α = {fig4b_alpha:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 4: effect of α and β (bars: bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


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


def fig5_pairs(
    baseline_path: str, guided_path: str, shape: tuple[int, int, int], num_pairs: int, out_pdf: str, out_csv: str
) -> None:
    """Guided (top) and baseline (bottom) samples from identical seeds."""
    plt = _plt()
    baseline, guided = _load(baseline_path, shape), _load(guided_path, shape)
    _check_pairs(baseline, guided, num_pairs)
    cols = min(num_pairs, 12)
    blocks = int(np.ceil(num_pairs / cols))
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(cols * 0.8, blocks * 1.75), squeeze=False)
    for i in range(blocks * cols):
        r, c = divmod(i, cols)
        for k, (data, name) in enumerate([(guided, "guided"), (baseline, "baseline")]):
            ax = axes[2 * r + k][c]
            if i < num_pairs:
                _show(ax, data["images"][i])
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("Figure 5: guided (top) vs baseline (bottom), identical seeds", fontsize=9)
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(_pairs_rows(baseline, range(num_pairs))), out_csv)


def fig6_classes(
    baseline_path: str,
    guided_path: str,
    shape: tuple[int, int, int],
    classes: list[int],
    per_class: int,
    out_pdf: str,
    out_csv: str,
) -> None:
    """For each of two classes: baseline samples (left) and guided samples from the same seeds (right)."""
    plt = _plt()
    baseline, guided = _load(baseline_path, shape), _load(guided_path, shape)
    paired = min(len(baseline["labels"]), len(guided["labels"]))
    _check_pairs(baseline, guided, paired)
    side = int(np.ceil(np.sqrt(per_class)))
    fig, axes = plt.subplots(
        side * len(classes), 2 * side + 1, figsize=((2 * side + 1) * 0.7, side * len(classes) * 0.75), squeeze=False
    )
    rows = []
    for ci, c in enumerate(classes):
        idx = np.flatnonzero(baseline["labels"][:paired] == c)[:per_class]
        rows += _pairs_rows(baseline, idx)
        for j in range(side * side):
            r, col = divmod(j, side)
            for offset, data in [(0, baseline), (side + 1, guided)]:
                ax = axes[ci * side + r][offset + col]
                _show(ax, data["images"][idx[j]]) if j < len(idx) else ax.axis("off")
            axes[ci * side + r][side].axis("off")
        axes[ci * side][0].set_title(f"{baseline['class_names'][c]}: baseline", fontsize=7, loc="left")
        axes[ci * side][side + 1].set_title("guided", fontsize=7, loc="left")
    fig.subplots_adjust(hspace=0.45)
    fig.suptitle("Figure 6: baseline (left) vs guided (right), same seeds", fontsize=9)
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def fig10_progressive(
    cell_paths: list[str],
    shape: tuple[int, int, int],
    alphas: list[float],
    beta: float,
    num_seeds: int,
    scores_csv: str,
    out_pdf: str,
    out_csv: str,
) -> None:
    """One row per seed, one column per α (increasing), β fixed."""
    plt = _plt()
    cells = {Path(p).stem: _load(p, shape) for p in cell_paths}
    scores = pd.read_csv(scores_csv)
    fig, axes = plt.subplots(num_seeds, len(alphas), figsize=(len(alphas) * 0.9, num_seeds * 0.9 + 0.4), squeeze=False)
    rows = []
    for ai, a in enumerate(alphas):
        name = cell_name("hardness", a, beta)
        data, table = cells[name], _hardness_of(scores, name).set_index("index")
        for s in range(num_seeds):
            _show(axes[s][ai], data["images"][s])
            rows.append(
                {
                    "alpha": a,
                    "beta": beta,
                    "index": s,
                    "seed": int(data["seeds"][s]),
                    "label": int(data["labels"][s]),
                    "hardness": float(table.loc[s, "hardness"]),
                }
            )
        axes[0][ai].set_title(f"α={a:g}", fontsize=7)
    fig.suptitle(f"Figure 10: progressive α (β = {beta:g}), one row per seed", fontsize=9)
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def figA5_ablation(scores_csv: str, alphas: list[float], beta: float, out_pdf: str, out_csv: str) -> None:
    """Hardness distributions under the hardness loss (Eq. 4) and the softmax loss (A.5) at matched
    α, β, beside the baseline samples of the same seeds."""
    plt = _plt()
    scores = pd.read_csv(scores_csv)
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 3), squeeze=False)
    baseline = _hardness_of(scores, "baseline")
    rows = []
    for ax, a in zip(axes[0], alphas):
        sets = {loss: _hardness_of(scores, cell_name(loss, a, beta)) for loss in ("hardness", "softmax")}
        sets = {"baseline": baseline[baseline["index"] < len(sets["hardness"])], **sets}
        all_h = pd.concat([s["hardness"] for s in sets.values()])
        bins = np.linspace(np.percentile(all_h, 0.5), np.percentile(all_h, 99.5), 35)
        for name, table in sets.items():
            h = table["hardness"]
            ax.hist(
                h,
                bins=bins,
                histtype="step",
                density=True,
                lw=1.5,
                label=f"{name} (median {h.median():.1f}, acc {table['correct'].mean():.2f})",
            )
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
        ax.set_title(f"α = {a:g}, β = {beta:g}", fontsize=9)
        ax.set_xlabel("hardness score")
        ax.legend(fontsize=6)
    fig.suptitle("Appendix A.5: hardness loss vs softmax loss", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


# ----------------------------------------------------------------------------- evaluation figures

METRIC_LABELS = {"hardness": "hardness score", "avgknn": "AvgkNN distance (k = 5)", "lof": "local outlier factor"}
SET_ORDER = ["real", "baseline", "guided", "gan"]


def _density_panels(axes, table: pd.DataFrame, extractor: str, rows: list) -> None:
    for ax, metric in zip(axes, METRIC_LABELS):
        sub = table[table["metric"] == metric]
        values = sub["value"]
        lo, hi = np.percentile(values, 0.5), np.percentile(values, 99.5)
        bins = np.linspace(lo, hi, 40)
        for name in [s for s in SET_ORDER if s in set(sub["set"])] + sorted(set(sub["set"]) - set(SET_ORDER)):
            v = sub[sub["set"] == name]["value"]
            ax.hist(
                v.clip(lo, hi),
                bins=bins,
                histtype="step",
                density=True,
                lw=1.5,
                label=f"{name} (median {v.median():.3g})",
            )
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
        ax.set_xlabel(METRIC_LABELS[metric], fontsize=8)
        ax.legend(fontsize=6)
    axes[0].set_ylabel(extractor, fontsize=8)


def fig7_density(metrics_csvs: list[str], out_pdf: str, out_csv: str, title: str) -> None:
    """Hardness, AvgkNN and LOF distributions of real (held-out), baseline and guided images,
    one row of panels per feature extractor (figure 7: the first; figure 17: all)."""
    plt = _plt()
    tables = [pd.read_csv(p) for p in metrics_csvs]
    fig, axes = plt.subplots(len(tables), 3, figsize=(11, 3 * len(tables)), squeeze=False)
    rows: list = []
    for ax_row, table in zip(axes, tables):
        _density_panels(ax_row, table, str(table["extractor"].iloc[0]), rows)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def fig8_closest_pairs(
    pairs_csv: str, guided_path: str, reference_images: np.ndarray, show: int, out_pdf: str, out_csv: str
) -> None:
    """The globally closest guided–training pairs: guided (left) and training image (right)."""
    plt = _plt()
    pairs = pd.read_csv(pairs_csv).head(show)
    guided = _load(guided_path, reference_images.shape[1:])
    cols = 4
    rows_n = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows_n, 2 * cols, figsize=(2 * cols * 0.9, rows_n * 1.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, pair in enumerate(pairs.itertuples()):
        row, col = divmod(r, cols)
        _show(axes[row][2 * col], guided["images"][pair.guided_index])
        _show(axes[row][2 * col + 1], reference_images[pair.reference_index])
        axes[row][2 * col].set_title(f"d={pair.distance:.2f}", fontsize=6)
    fig.suptitle("Figure 8: closest synthetic (left) – real (right) pairs", fontsize=9)
    _save(fig, out_pdf)
    atomic_to_csv(pairs, out_csv)


def fig9_neighbours(
    neighbours_csv: str, guided_path: str, reference_images: np.ndarray, show: int, out_pdf: str, out_csv: str
) -> None:
    """Guided samples (first column) with their nearest training images and labels; samples
    whose nearest neighbour carries another label come first."""
    plt = _plt()
    table = pd.read_csv(neighbours_csv)
    guided = _load(guided_path, reference_images.shape[1:])
    names = guided["class_names"]
    nearest = table[table["rank"] == 0].set_index("guided_index")
    other = nearest.index[nearest["reference_label"] != nearest["guided_label"]]
    same = nearest.index[nearest["reference_label"] == nearest["guided_label"]]
    chosen = list(other[:show]) + list(same[: max(0, show - len(other))])
    k = int(table["rank"].max()) + 1
    fig, axes = plt.subplots(len(chosen), k + 1, figsize=((k + 1) * 0.9, len(chosen) * 1.0), squeeze=False)
    for r, g in enumerate(chosen):
        _show(axes[r][0], guided["images"][g])
        axes[r][0].set_title(f"{names[guided['labels'][g]]}", fontsize=6, color="blue")
        for _, nb in table[table["guided_index"] == g].sort_values("rank").iterrows():
            ax = axes[r][int(nb["rank"]) + 1]
            _show(ax, reference_images[int(nb["reference_index"])])
            ax.set_title(
                names[int(nb["reference_label"])],
                fontsize=6,
                color="red" if nb["reference_label"] != nb["guided_label"] else "black",
            )
    fraction = float((nearest["reference_label"] != nearest["guided_label"]).mean())
    fig.suptitle(
        f"Figure 9: guided samples and their {k} nearest real images "
        f"({fraction:.1%} of guided samples have a nearest neighbour of another class)",
        fontsize=8,
    )
    _save(fig, out_pdf)
    atomic_to_csv(table[table["guided_index"].isin(chosen)], out_csv)


SAMPLE_TITLES = {"baseline": "baseline samples (DDPM)", "guided": "guided samples (ours)", "gan": "GAN samples"}


def fig1_overview(
    metrics_csv: str, real_images: np.ndarray, samples: dict[str, str], per_panel: int, out_pdf: str, out_csv: str
) -> None:
    """(a.i) real images of highest and (a.ii) lowest hardness (low- and high-density), then the
    first samples of each generator in `samples` (name → path: baseline, guided, gan)."""
    plt = _plt()
    metrics = pd.read_csv(metrics_csv)
    real = metrics[(metrics["set"] == "real") & (metrics["metric"] == "hardness")].sort_values("value")
    panels = [
        ("real, low density (highest hardness)", real.tail(per_panel)[::-1], real_images),
        ("real, high density (lowest hardness)", real.head(per_panel), real_images),
    ]
    rows = [
        {"panel": title, "index": int(r["index"]), "hardness": float(r["value"])}
        for title, table, _ in panels
        for _, r in table.iterrows()
    ]
    for name, path in samples.items():
        title = SAMPLE_TITLES.get(name, f"{name} samples")
        hard = metrics[(metrics["set"] == name) & (metrics["metric"] == "hardness")].set_index("index")
        table = pd.DataFrame(
            {"index": np.arange(per_panel), "value": hard.loc[np.arange(per_panel), "value"].to_numpy()}
        )
        panels.append((title, table, _load(path, real_images.shape[1:])["images"]))
        rows += [
            {"panel": title, "index": int(i), "hardness": float(v)} for i, v in zip(table["index"], table["value"])
        ]
    side = int(np.ceil(np.sqrt(per_panel)))
    fig, axes = plt.subplots(
        side, len(panels) * (side + 1) - 1, figsize=(len(panels) * (side + 1) * 0.6, side * 0.7 + 0.5), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for p, (title, table, images) in enumerate(panels):
        for j, idx in enumerate(table["index"].to_numpy()[: side * side]):
            r, c = divmod(j, side)
            ax = axes[r][p * (side + 1) + c]
            ax.axis("on")
            _show(ax, images[int(idx)])
        axes[0][p * (side + 1)].set_title(title, fontsize=7, loc="left")
    fig.suptitle("Figure 1: real images from low- and high-density regions, and samples of each generator", fontsize=9)
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def fig11_nll(nll_csv: str, metrics_csv: str, correlation_csv: str, out_pdf: str, out_csv: str) -> None:
    """NLL (bits/dim) of held-out images against hardness, AvgkNN and LOF, with correlations."""
    plt = _plt()
    nll = pd.read_csv(nll_csv).set_index("index")
    metrics = pd.read_csv(metrics_csv)
    extractor = str(metrics["extractor"].iloc[0])
    corr = pd.read_csv(correlation_csv)
    corr = corr[corr["extractor"] == extractor].set_index("metric")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    rows = []
    for ax, metric in zip(axes, METRIC_LABELS):
        real = metrics[(metrics["set"] == "real") & (metrics["metric"] == metric)].set_index("index")
        joined = nll.join(real["value"], how="inner")
        ax.scatter(joined["value"], joined["bpd"], s=6, alpha=0.6)
        ax.set_xlabel(f"{METRIC_LABELS[metric]} ({extractor})", fontsize=8)
        ax.set_title(
            f"Spearman {corr.loc[metric, 'spearman']:.2f}, Pearson {corr.loc[metric, 'pearson']:.2f}", fontsize=8
        )
        rows += [
            {"index": int(i), "metric": metric, "value": float(v), "bpd": float(b)}
            for i, v, b in zip(joined.index, joined["value"], joined["bpd"])
        ]
    axes[0].set_ylabel(f"NLL (bits/dim, {nll['chain'].iloc[0]})", fontsize=8)
    fig.suptitle("Figure 11: diffusion-model NLL vs density metrics (held-out images)", fontsize=10)
    fig.tight_layout()
    _save(fig, out_pdf)
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def figA7_steps(fidelity_csv: str, out_pdf: str, out_csv: str) -> None:
    """Appendix A.7: precision against the number of DDIM steps, baseline and guided."""
    plt = _plt()
    table = pd.read_csv(fidelity_csv)
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
    atomic_to_csv(table, out_csv)


def figD1_discriminator_ablation(
    accuracy_csvs: dict[str, str], overrides: dict[str, dict], out_csv: str, out_pdf: str
) -> None:
    """The discriminator study: held-out accuracy against t for every variant (left), and at
    t = 0 with the dark-background cue removed from both sets (right). One tidy row per
    (variant, condition, timestep) with accuracy, cross-entropy and n goes to `out_csv`."""
    import json

    plt = _plt()
    table = pd.concat(
        [
            pd.read_csv(path).assign(variant=name, overrides=json.dumps(overrides.get(name, {}), sort_keys=True))
            for name, path in accuracy_csvs.items()
        ],
        ignore_index=True,
    )
    table = table[["variant", "overrides", "condition", "timestep", "accuracy", "loss", "n"]]
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    colours = plt.cm.tab10(np.arange(len(accuracy_csvs)) % 10)
    conditions = list(dict.fromkeys(table["condition"]))
    width = 0.8 / len(accuracy_csvs)
    for i, (name, colour) in enumerate(zip(accuracy_csvs, colours)):
        rows = table[(table["variant"] == name) & (table["condition"] == "as is")].sort_values("timestep")
        ax_t.plot(rows["timestep"], rows["accuracy"], "o-", color=colour, ms=3, label=name)
        at0 = table[(table["variant"] == name) & (table["timestep"] == table["timestep"].min())]
        at0 = at0.set_index("condition").reindex(conditions)
        ax_c.bar(
            np.arange(len(conditions)) + (i - (len(accuracy_csvs) - 1) / 2) * width,
            at0["accuracy"],
            width,
            color=colour,
        )
    ax_t.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_t.set_xscale("symlog", linthresh=10)
    ticks = sorted(set(table["timestep"]))
    ax_t.set_xlim(0, max(ticks) * 1.1)
    ax_t.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
    ax_t.set_xlabel("timestep t of x_t (symmetric log scale)")
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
    atomic_to_csv(table, out_csv)
