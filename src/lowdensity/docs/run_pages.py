"""The generated pages of a run: the results page (every figure beside its numbers and the paper's
claim, with whether the claim holds in this run, decided from the CSVs), the samplers page and
the README's short results table. Every number on them is read from the run's files here."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lowdensity.docs.static_pages import GENERATED_NOTE, markdown_table
from lowdensity.io import atomic_path

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def pdf_to_png(pdf: str | Path, png: str | Path, width: int = 1100) -> None:
    """The first page of a figure's PDF as a PNG `width` pixels wide (pypdfium2, no system tools)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    try:
        page = document[0]
        image = page.render(scale=width / page.get_width()).to_pil()
        with atomic_path(png) as tmp:
            image.save(tmp, format="PNG", optimize=True)
    finally:
        document.close()


def number(value, digits: int = 3) -> str:
    """A value as the pages print it: `digits` significant figures, empty for a missing one."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–" if value is not None and np.isinf(value) else ""
    return f"{value:.{digits}g}"


def interval(value, low, high, digits: int = 3) -> str:
    """`value [low, high]`, or the value alone where the metric has no interval (recall)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return number(value, digits)
    return f"{number(value, digits)} [{number(low, digits)}, {number(high, digits)}]"


def fidelity_columns(sets: pd.DataFrame) -> pd.DataFrame:
    """A set summary (indexed by set) as the pages show it: the medians, then each fidelity and
    diversity metric with its interval where the table has one, n, and FID where present."""
    shown = pd.DataFrame(index=sets.index)
    for metric in ("median_hardness", "median_avgknn", "median_lof"):
        shown[metric] = [number(v, 4) for v in sets[metric]]
    for metric in ("precision", "recall", "density", "coverage", "vendi"):
        if metric in sets.columns:
            low = sets.get(f"{metric}_low", pd.Series(np.nan, index=sets.index))
            high = sets.get(f"{metric}_high", pd.Series(np.nan, index=sets.index))
            shown[metric] = [interval(v, lo, hi) for v, lo, hi in zip(sets[metric], low, high)]
    shown["n"] = sets["n"]
    if "fid" in sets.columns:
        shown["fid"] = [number(v, 4) for v in sets["fid"]]
    return shown.reset_index()


@dataclass(frozen=True)
class Verdict:
    """Whether the paper's claim holds in this run (None: the run cannot say), and the numbers that decide it."""

    holds: bool | None
    because: str

    def markdown(self) -> str:
        word = {True: "holds", False: "does not hold", None: "undecided"}[self.holds]
        return f"**In this run:** {word} — {self.because}"


class RunPages:
    """Reads one run's results folder (`results/`, `paper_figures/`) and renders its pages.
    `image_dir` receives the PNG renders, linked from the pages as `image_link/<name>.png`."""

    def __init__(self, workdir: str | Path, extractors: list[str], image_dir: str | Path, image_link: str):
        self.workdir = Path(workdir)
        self.results = self.workdir / "results"
        self.extractors = list(extractors)
        self.first = self.extractors[0]
        self.image_dir = Path(image_dir)
        self.image_link = image_link

    def csv(self, relative: str) -> pd.DataFrame:
        return pd.read_csv(self.results / relative)

    def figure(self, name: str, alt: str) -> str:
        """The figure's PDF rendered to PNG beside the page, as a Markdown image."""
        pdf = self.workdir / "paper_figures" / f"{name}.pdf"
        pdf_to_png(pdf, self.image_dir / f"{name}.png")
        return f"![{alt}]({self.image_link}/{name}.png)"

    def picture(self, relative: str, name: str, alt: str) -> str:
        """A PNG the run wrote (a sample grid), copied beside the page."""
        with atomic_path(self.image_dir / f"{name}.png") as tmp:
            shutil.copyfile(self.results / relative, tmp)
        return f"![{alt}]({self.image_link}/{name}.png)"

    # ---- the numbers, each read from the CSV of its figure or table

    def set_summary(self, space: str) -> pd.DataFrame:
        """Per set of one space: medians, precision, recall, n; and FID where the fidelity table has it."""
        sets = self.csv(f"metrics/{space}_sets.csv").set_index("set")
        fidelity_path = self.results / f"metrics/{space}_fidelity.csv"
        if fidelity_path.exists():
            fid = pd.read_csv(fidelity_path).set_index("set")
            column = next(c for c in fid.columns if c.startswith("fid_"))
            sets["fid"] = fid[column]
        return sets

    def density_verdict(self, sets: pd.DataFrame) -> Verdict:
        metrics = ["median_hardness", "median_avgknn", "median_lof"]
        lower_density = all(sets.loc["guided", m] > sets.loc["baseline", m] for m in metrics)
        like_real = all(
            abs(sets.loc["baseline", m] - sets.loc["real", m]) < abs(sets.loc["guided", m] - sets.loc["real", m])
            for m in metrics
        )
        text = "; ".join(
            f"median {m.removeprefix('median_')}: real {number(sets.loc['real', m])}, "
            f"baseline {number(sets.loc['baseline', m])}, guided {number(sets.loc['guided', m])}"
            for m in metrics
        )
        return Verdict(lower_density and like_real, text)

    def fig4a(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("fig4.csv")
        medians = table[(table["panel"] == "a") & (table["statistic"] == "median_hardness")][["alpha", "value", "n"]]
        medians = medians.sort_values("alpha").rename(columns={"value": "median hardness"})
        rising = bool(np.all(np.diff(medians["median hardness"].to_numpy()) > 0))
        because = ", ".join(f"α = {a:g}: {number(v, 4)}" for a, v in zip(medians["alpha"], medians["median hardness"]))
        return medians, Verdict(rising, f"median hardness {because}")

    def fig4b(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("guidance/fig4b_fidelity.csv")
        rows = []
        for (space, metric), group in table.groupby(["space", "metric"], sort=False):
            group = group.sort_values("beta")
            rows.append(
                {
                    "space": space,
                    "metric": metric,
                    **{
                        f"β = {b:g}": interval(v, lo, hi)
                        for b, v, lo, hi in zip(group["beta"], group["value"], group["low"], group["high"])
                    },
                }
            )
        wide = pd.DataFrame(rows)
        precision = table[(table["metric"] == "improved_precision") & (table["space"] == self.first)].sort_values(
            "beta"
        )
        first, last = precision.iloc[0], precision.iloc[-1]
        separated = last["low"] > first["high"]
        because = (
            f"improved precision in the {self.first} space at β = {last['beta']:g}: "
            f"{interval(last['value'], last['low'], last['high'])} against "
            f"{interval(first['value'], first['low'], first['high'])} "
            f"at β = {first['beta']:g}" + ("" if separated else "; the intervals overlap")
        )
        return wide, Verdict(bool(separated), because)

    def table1(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("table1.csv")
        rows = []
        for (low, high), group in table.groupby(["quantile_low", "quantile_high"], sort=True):
            row = {"hardness range (quantiles of real)": f"{low:g}–{high:g}"}
            for r in group.itertuples():
                row[f"{r.sampler}: acceptance"] = interval(r.acceptance_rate, r.acceptance_low, r.acceptance_high, 2)
                row[f"{r.sampler}: days for N"] = number(r.cost_days, 3)
                if r.sampler != "baseline":
                    row[f"{r.sampler}: speed-up"] = interval(r.speedup, r.speedup_low, r.speedup_high, 3)
            rows.append(row)
        guided = table[table["sampler"] == "guided"].sort_values("quantile_low")
        speedups = guided["speedup"].to_numpy()
        finite = np.isfinite(speedups)
        holds = bool(finite.all() and (speedups > 1).all() and np.all(np.diff(speedups) > 0))
        because = "speed-ups " + ", ".join(f"×{number(s)}" for s in speedups) + " from the least to the most rare range"
        seconds = table.groupby("sampler")["seconds_per_image"].first()
        because += "; seconds per image " + ", ".join(f"{name} {number(s)}" for name, s in seconds.items())
        return pd.DataFrame(rows), Verdict(holds, because)

    def memorization(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("memorization.csv").set_index("set")
        holds = bool(table.loc["guided", "mean_nn_distance"] > table.loc["real", "mean_nn_distance"])
        because = (
            f"mean nearest-neighbour distance {number(table.loc['guided', 'mean_nn_distance'])} for guided samples, "
            f"{number(table.loc['real', 'mean_nn_distance'])} for held-out real images"
        )
        return table.reset_index(), Verdict(holds, because)

    def nll(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("nll_correlation.csv")
        first = table[table["extractor"] == self.first]
        strongest = first.loc[first["spearman"].abs().idxmax()]
        weak = bool((first["spearman"].abs() < 0.3).all())
        mean_bpd = self.csv("nll.csv")["bpd"].mean()
        because = (
            f"in the {self.first} space the largest |Spearman ρ| is {number(strongest['spearman'], 2)} "
            f"(with {strongest['metric']}); mean bound {number(mean_bpd, 4)} bits/dim over {int(strongest['n'])} images"
        )
        return table[["extractor", "metric", "n", "spearman", "pearson"]].round(3), Verdict(weak, because)

    def figA7(self) -> tuple[pd.DataFrame, Verdict]:
        table = self.csv("figA7_fidelity.csv")
        wide = table.pivot_table(index="steps", columns="sampler", values="precision").reset_index()
        improving = bool((wide[["baseline", "guided"]].iloc[-1] > wide[["baseline", "guided"]].iloc[0]).all())
        because = "precision at " + "; ".join(
            f"{s}: " + ", ".join(number(p, 2) for p in wide[s]) for s in ("baseline", "guided")
        )
        because += f" for {', '.join(str(s) for s in wide['steps'])} steps"
        return wide.round(3), Verdict(improving, because)

    def accuracies(self) -> pd.DataFrame:
        frames = []
        for network in ("classifier", "discriminator"):
            table = self.csv(f"{network}/accuracy.csv")
            frames.append(table[table["condition"] == "as is"][["network", "timestep", "accuracy", "n"]])
        return (
            pd.concat(frames).pivot_table(index="timestep", columns="network", values="accuracy").reset_index().round(3)
        )

    # ---- the pages

    def summary_table(self) -> str:
        """The README's short table: the first space's medians, precision and recall per set, and
        Table 1's speed-ups."""
        sets = self.set_summary(self.first)
        rows = [
            {
                "set": name,
                "median hardness": number(r["median_hardness"], 4),
                "median AvgkNN": number(r["median_avgknn"], 4),
                "median LOF": number(r["median_lof"], 4),
                "precision": number(r["precision"], 3),
                "recall": number(r["recall"], 3),
                "n": int(r["n"]),
            }
            for name, r in sets.iterrows()
        ]
        _, verdict = self.table1()
        return "\n".join(
            [
                markdown_table(pd.DataFrame(rows)),
                "",
                f"Density metrics in the {self.first} feature space. Table 1 (guided against rejection sampling): "
                f"{verdict.because}.",
            ]
        )

    def results_page(self, stamp: str) -> str:
        sets = self.set_summary(self.first)
        lines = [
            GENERATED_NOTE.format(source="src/lowdensity/docs/run_pages.py, or rerun `snakemake docs`"),
            "# Results",
            "",
            stamp,
            "",
            "Every number on this page is read from the run's CSVs (named in each section); each figure is the "
            "PDF the pipeline drew. *The paper* quotes its claim; *in this run* says whether the run's numbers "
            "bear it out, by the test written beside it.",
            "",
        ]

        lines += [
            "## Samples",
            "",
            "Real training images, then baseline, guided and GAN samples, one row per class.",
            "",
        ]
        for relative, name, alt in [
            ("data/train_grid.png", "real_grid", "real images"),
            ("samples/baseline_grid.png", "baseline_grid", "baseline samples"),
            ("samples/guided_grid.png", "guided_grid", "guided samples"),
            ("samples/gan_grid.png", "gan_grid", "GAN samples"),
        ]:
            if (self.results / relative).exists():
                lines += [f"*{alt}*", "", self.picture(relative, name, alt), ""]
        lines += [
            "Held-out accuracy of the classifier and the discriminator at each t "
            "(`results/classifier/accuracy.csv`, `results/discriminator/accuracy.csv`):",
            "",
            markdown_table(self.accuracies()),
            "",
        ]

        medians, verdict = self.fig4a()
        wide, verdict_b = self.fig4b()
        lines += [
            "## Figure 4: the effect of α and β",
            "",
            self.figure("fig4", "Figure 4"),
            "",
            "**The paper:** increasing α shifts the hardness distribution to the right (4a); increasing β at "
            "α = 0.5 improves precision (4b).",
            "",
            "(a) `results/fig4.csv`, β = 0:",
            "",
            markdown_table(medians),
            "",
            verdict.markdown() + ".",
            "",
            "(b) `results/guidance/fig4b_fidelity.csv` (value [bootstrap interval]):",
            "",
            markdown_table(wide),
            "",
            verdict_b.markdown() + ".",
            "",
            "What β can act on depends on what the discriminator H′ separates and at which noise levels the sampler "
            "consults it: see [the discriminator H′](../method.md#the-discriminator-h) and its held-out accuracy "
            "above, and the [fidelity study](../fidelity-study.md), which measures β's gain along a ladder of "
            "weaker DDPMs.",
            "",
        ]

        table = fidelity_columns(sets)
        lines += [
            "## Figure 7: density of real, baseline, guided and GAN images",
            "",
            self.figure("fig7", "Figure 7"),
            "",
            "**The paper:** baseline samples have the real data's density distribution; guided samples come from "
            "low-density neighbourhoods on all three metrics.",
            "",
            f"`results/metrics/{self.first}_sets.csv` (FID from `{self.first}_fidelity.csv`, in this space; "
            "density and coverage: Naeem et al. 2020; Vendi: the effective number of distinct samples, "
            "Friedman & Dieng 2023; [bootstrap intervals at `evaluation.intervals.level`]):",
            "",
            markdown_table(table),
            "",
            self.density_verdict(sets).markdown() + ".",
            "",
        ]

        lines += [
            "## Figure 17: the same in every feature space",
            "",
            self.figure("fig17", "Figure 17"),
            "",
            "**The paper:** the trends hold with other feature extractors.",
            "",
        ]
        for space in self.extractors[1:]:
            other = self.set_summary(space)
            lines += [
                f"`results/metrics/{space}_sets.csv`:",
                "",
                markdown_table(fidelity_columns(other)),
                "",
                self.density_verdict(other).markdown() + ".",
                "",
            ]

        cost, verdict = self.table1()
        lines += [
            "## Table 1: the cost of low-density images",
            "",
            "**The paper:** guided sampling is up to 2–6× faster than rejection sampling from the baseline, the more "
            "so the rarer the hardness range (×1.1, ×2.8, ×6.0 for its three ranges on ImageNet).",
            "",
            "`results/table1.csv` (value [bootstrap interval]; N images per range):",
            "",
            markdown_table(cost),
            "",
            verdict.markdown() + ".",
            "",
        ]

        memo, verdict = self.memorization()
        lines += [
            "## Memorization (figures 8 and 9)",
            "",
            self.figure("fig8", "Figure 8"),
            "",
            self.figure("fig9", "Figure 9"),
            "",
            "**The paper:** guided samples are farther from their nearest training image than held-out real images "
            "are (0.42 against 0.29 on ImageNet); the closest pairs are different images.",
            "",
            "`results/memorization.csv`:",
            "",
            markdown_table(memo.round(4)),
            "",
            verdict.markdown() + ".",
            "",
        ]

        corr, verdict = self.nll()
        lines += [
            "## Figure 11: NLL against the density metrics",
            "",
            self.figure("fig11", "Figure 11"),
            "",
            "**The paper:** the diffusion model's likelihood estimate is a poor predictor of density (appendix A.2). "
            "The test here: every |Spearman ρ| below 0.3 in the first space.",
            "",
            "`results/nll_correlation.csv`:",
            "",
            markdown_table(corr),
            "",
            verdict.markdown() + ".",
            "",
        ]

        steps, verdict = self.figA7()
        lines += [
            "## Figure A.7: fidelity against DDIM steps",
            "",
            self.figure("figA7", "Figure A.7"),
            "",
            "**The paper:** both samplers struggle at ten steps and improve quickly with more.",
            "",
            "`results/figA7_fidelity.csv` (improved precision):",
            "",
            markdown_table(steps),
            "",
            verdict.markdown() + ".",
            "",
        ]

        for name, title, shows in [
            (
                "fig1",
                "Figure 1: real images of low and high density, and each generator's samples",
                "Real held-out images of the highest and lowest hardness, "
                "then baseline, guided and GAN samples (`results/fig1.csv`).",
            ),
            (
                "fig3",
                "Figure 3: the α × β grid",
                "One seed per shown class, α down the rows and β across the columns (`results/fig3.csv`).",
            ),
            (
                "fig5",
                "Figure 5: guided and baseline samples from the same seeds",
                "Guided (top) and baseline (bottom) pairs (`results/fig5.csv`).",
            ),
            (
                "fig6",
                "Figure 6: two classes, baseline against guided",
                "The same seeds, baseline left, guided right (`results/fig6.csv`).",
            ),
            ("fig10", "Figure 10: progressive α", "One row per seed, α growing to the right (`results/fig10.csv`)."),
            (
                "figA5",
                "Figure A.5: the hardness loss against the softmax loss",
                "Hardness distributions under Eq. 4's loss and appendix "
                "A.5's at the same weights (`results/figA5.csv`).",
            ),
        ]:
            lines += [f"## {title}", "", shows, "", self.figure(name, title), ""]
        return "\n".join(lines)

    def fidelity_study_page(self, stamp: str) -> str:
        """The fidelity study's numbers from results/fidelity_study.csv (`snakemake fidelity_study`):
        per rung what H′ sees and how far the baseline is from real, the gain of the largest β in
        every form and α, and where that gain separates from zero."""
        from lowdensity.io import ArtifactError

        path = self.results / "fidelity_study.csv"
        if not path.exists():
            raise ArtifactError(
                f"{path} not found: the fidelity study has not run here; `snakemake fidelity_study` runs it"
            )
        table = pd.read_csv(path)
        study = FidelityStudy(table, self.first)
        lines = [GENERATED_NOTE.format(source="src/lowdensity/docs/run_pages.py, or rerun `snakemake docs`"), stamp, ""]
        lines += [self.figure("figD2", "Figure D2"), ""]
        lines += [
            f"Per rung (`results/fidelity_study.csv`): H′'s held-out ROC-AUC at t = 0 and at the largest t where it "
            f"stays above {study.SEEN:g}, the rung's baseline set against the real held-out set in the {self.first} "
            f"space, and the improved-precision gain of β = {study.top_beta:g} over β = 0 in that space (paired over "
            "the cells' seeds, with its interval) for each β form and α:",
            "",
            markdown_table(study.rung_table()),
            "",
            "Where the gain separates from zero (its interval excludes 0), in each space:",
            "",
            *[f"- {line}" for line in study.verdicts()],
            "",
            f"Precision of every cell (improved precision [interval], {self.first} space / classifier space):",
            "",
            markdown_table(study.cell_table()),
        ]
        return "\n".join(lines)

    def samplers_page(self, stamp: str) -> str:
        """The successors' comparison from results/samplers.csv and table1_samplers.csv (`snakemake samplers`)."""
        from lowdensity.io import ArtifactError

        path = self.results / "samplers.csv"
        if not path.exists():
            raise ArtifactError(
                f"{path} not found: the samplers' comparison has not run here; `snakemake samplers` runs it"
            )
        lines = [GENERATED_NOTE.format(source="src/lowdensity/docs/run_pages.py, or rerun `snakemake docs`"), stamp, ""]
        table = pd.read_csv(path)
        lines += [
            self.figure("figS1", "Figure S1"),
            "",
            "`results/samplers.csv`, one row per sampler, strength and feature space (medians of the per-image "
            "metrics; `outside_every_ball`: the fraction of samples the Rarity score leaves out):",
            "",
        ]
        keep = [
            c
            for c in table.columns
            if c
            in (
                "sampler",
                "strength",
                "space",
                "precision",
                "recall",
                "median_avgknn",
                "median_hardness",
                "median_lof",
                "frechet_distance",
                "median_rarity",
                "outside_every_ball",
                "seconds_per_image",
            )
        ]
        lines += [markdown_table(table[keep].round(4)), ""]
        costs = self.results / "table1_samplers.csv"
        if costs.exists():
            per_sampler = pd.read_csv(costs)
            columns = [
                c
                for c in (
                    "sampler",
                    "strength",
                    "quantile_low",
                    "quantile_high",
                    "acceptance_rate",
                    "speedup",
                    "speedup_low",
                    "speedup_high",
                    "seconds_per_image",
                )
                if c in per_sampler.columns
            ]
            lines += [
                "`results/table1_samplers.csv`, Table 1 per sampler at its default strength:",
                "",
                markdown_table(per_sampler[columns].round(4)),
                "",
            ]
        accuracy = self.results / "samplers/minority/accuracy.csv"
        if accuracy.exists():
            lines += [
                "The minority classifier's held-out accuracy (`results/samplers/minority/accuracy.csv`):",
                "",
                markdown_table(pd.read_csv(accuracy).round(3)),
                "",
            ]
        return "\n".join(lines)


def replace_readme_block(readme: str, block: str) -> str:
    """README.md's text with the part between the results markers replaced by `block`."""
    if README_START not in readme or README_END not in readme:
        raise ValueError(f"README.md lacks the markers {README_START} and {README_END} that hold the results table")
    head, rest = readme.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{block}\n{README_END}{tail}"


class FidelityStudy:
    """The fidelity study's tidy table read for the page: rungs, gains and verdicts."""

    SEEN = 0.6  # an ROC-AUC this far above chance counts as H′ seeing the difference

    def __init__(self, table: pd.DataFrame, extractor: str):
        self.table, self.extractor = table, extractor
        self.rungs = sorted(table["rung"].unique())
        gains = table[table["set"] == "gain"]
        self.top_beta = gains["beta"].max()
        self.gains = gains[gains["beta"] == self.top_beta]
        self.forms = sorted(set(self.gains["form"]), key=lambda form: (form != "paper", form))  # the paper's first
        self.alphas = sorted(self.gains["alpha"].unique(), reverse=True)
        self.auc = table[(table["set"] == "discriminator") & (table["metric"] == "roc_auc")]

    def _rows(self, **match) -> pd.DataFrame:
        rows = self.table
        for column, value in match.items():
            rows = rows[rows[column] == value]
        return rows

    def seen_until(self, rung) -> str:
        """The largest evaluated t at which the rung's H′ ROC-AUC is at least SEEN ('–' if none)."""
        rows = self.auc[(self.auc["rung"] == rung) & (self.auc["value"] >= self.SEEN)]
        return str(int(rows["timestep"].max())) if len(rows) else "–"

    def gain(self, rung, space, form, alpha) -> pd.Series:
        g = self.gains
        return g[(g["rung"] == rung) & (g["space"] == space) & (g["form"] == form) & (g["alpha"] == alpha)].iloc[0]

    def rung_table(self) -> pd.DataFrame:
        rows = []
        for rung in self.rungs:
            auc0 = self.auc[(self.auc["rung"] == rung)].sort_values("timestep").iloc[0]["value"]
            base = self._rows(rung=rung, space=self.extractor, set="baseline").set_index("metric")
            row = {
                "DDPM step": rung,
                "H′ ROC-AUC at t = 0": number(auc0),
                f"H′ ROC-AUC ≥ {self.SEEN:g} up to t": self.seen_until(rung),
                "baseline precision": interval(*base.loc["improved_precision", ["value", "low", "high"]]),
                "recall": number(base.loc["recall", "value"]),
                "FID": number(base.loc["fid", "value"], 4),
            }
            for form in self.forms:
                for alpha in self.alphas:
                    g = self.gain(rung, self.extractor, form, alpha)
                    row[f"gain, {form}, α = {alpha:g}"] = interval(g["value"], g["low"], g["high"], 2)
            rows.append(row)
        return pd.DataFrame(rows)

    def verdicts(self) -> list[str]:
        """One line per (space, form, α): the rungs where β raises precision, lowers it, or does neither."""
        lines = []
        for space in list(dict.fromkeys(self.gains["space"])):
            for form in self.forms:
                for alpha in self.alphas:
                    groups = {"raises precision on": [], "lowers it on": [], "no detectable change on": []}
                    for rung in self.rungs:
                        g = self.gain(rung, space, form, alpha)
                        key = (
                            "raises precision on"
                            if g["low"] > 0
                            else "lowers it on"
                            if g["high"] < 0
                            else "no detectable change on"
                        )
                        groups[key].append(f"step {rung} ({interval(g['value'], g['low'], g['high'], 2)})")
                    said = "; ".join(f"{key} {', '.join(items)}" for key, items in groups.items() if items)
                    lines.append(f"**{space}, {form} form, α = {alpha:g}**: β = {self.top_beta:g} {said}.")
        return lines

    def cell_table(self) -> pd.DataFrame:
        cells = self.table[(self.table["set"] == "cell") & (self.table["metric"] == "improved_precision")]
        rows = []
        for (rung, alpha, beta, form), group in cells.groupby(["rung", "alpha", "beta", "form"], sort=True):
            by_space = group.set_index("space")
            shown = [
                interval(*by_space.loc[space, ["value", "low", "high"]]) if space in by_space.index else ""
                for space in (self.extractor, "classifier")
            ]
            rows.append(
                {"DDPM step": rung, "α": f"{alpha:g}", "β": f"{beta:g}", "form": form, "precision": " / ".join(shown)}
            )
        return pd.DataFrame(rows)
