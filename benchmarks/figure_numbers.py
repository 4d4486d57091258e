"""The headline numbers of the default run's figures, read from a run's results/.

    python benchmarks/figure_numbers.py                          # results/
    python benchmarks/figure_numbers.py AFTER --before BEFORE    # two runs side by side

Prints a Markdown table, one row per quantity: figure 4a's median hardness per α, figure 4b's
improved precision per β (EfficientNet-Lite0 space), figure 7's median AvgkNN per set, each set's
precision / recall and FID, Table 1's speed-ups, figure 11's Spearman correlations, the mean NLL
bound, the memorization distances, figure A.7's precision and the guides' held-out accuracies.
A change that alters the default's outputs reports its before → after from this table rather than
typing it (showyourwork's rule: every number from the files a rule wrote). With --before, a second
table takes every quantity the run's files give a 95 % interval for (figure 4b's precision per β
in both spaces, each set's precision, density and coverage, Table 1's speed-ups) and says whether
the new value lies inside the earlier run's interval and whether the two intervals overlap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

SPACE = "efficientnet_lite0"  # the first extractor of the default configuration


def figure_numbers(results: Path) -> dict[str, str]:
    """quantity → value (as the table prints it) for one results folder."""
    out: dict[str, str] = {}
    fig4 = pd.read_csv(results / "fig4.csv")
    a = fig4[(fig4.panel == "a") & (fig4.statistic == "median_hardness")].sort_values("alpha")
    out["fig4a median hardness at α = " + " / ".join(f"{x:g}" for x in a.alpha)] = " / ".join(
        f"{v:.1f}" for v in a.value
    )
    b = pd.read_csv(results / "guidance/fig4b_fidelity.csv")
    for space in (SPACE, "classifier"):
        p = b[(b.space == space) & (b.metric == "improved_precision")].sort_values("beta")
        out[f"fig4b improved precision ({space}) at β = " + " / ".join(f"{x:g}" for x in p.beta)] = " / ".join(
            f"{v:.3f}" for v in p.value
        )
    sets = pd.read_csv(results / f"metrics/{SPACE}_sets.csv").set_index("set")
    fid = pd.read_csv(results / f"metrics/{SPACE}_fidelity.csv").set_index("set")
    names = [s for s in ("real", "baseline", "guided", "gan") if s in sets.index]
    out["fig7 median AvgkNN: " + " / ".join(names)] = " / ".join(f"{sets.median_avgknn[s]:.2f}" for s in names)
    out["fig7 median hardness: " + " / ".join(names)] = " / ".join(f"{sets.median_hardness[s]:.0f}" for s in names)
    out["fig7 median LOF: " + " / ".join(names)] = " / ".join(f"{sets.median_lof[s]:.3f}" for s in names)
    for s in names[1:]:
        out[f"{s}: precision / recall, FID (n)"] = (
            f"{sets.precision[s]:.3f} / {sets.recall[s]:.3f}, {fid.fid_efficientnet_lite0[s]:.1f} ({int(sets.n[s])})"
        )
    table1 = pd.read_csv(results / "table1.csv")
    guided = table1[table1.sampler == "guided"].sort_values("range")
    out["Table 1 speed-up at q " + " / ".join(f"{q:g}" for q in guided.quantile_low)] = " / ".join(
        f"×{r.speedup:.2f} [{r.speedup_low:.2f}, {r.speedup_high:.2f}]" for r in guided.itertuples()
    )
    corr = pd.read_csv(results / "nll_correlation.csv")
    for space in (SPACE, "classifier"):
        c = corr[corr.extractor == space].set_index("metric")
        out[f"fig11 Spearman of NLL with AvgkNN / hardness / LOF ({space})"] = " / ".join(
            f"{c.spearman[m]:.3f}" for m in ("avgknn", "hardness", "lof")
        )
    out["mean NLL bound (bits/dim)"] = f"{pd.read_csv(results / 'nll.csv').bpd.mean():.3f}"
    mem = pd.read_csv(results / "memorization.csv").set_index("set")
    out["memorization: mean NN distance guided / real; other-label fraction guided / real"] = (
        f"{mem.mean_nn_distance['guided']:.1f} / {mem.mean_nn_distance['real']:.1f}; "
        f"{mem.fraction_nn_other_label['guided']:.3f} / {mem.fraction_nn_other_label['real']:.3f}"
    )
    a7 = pd.read_csv(results / "figA7.csv")
    for sampler in ("baseline", "guided"):
        r = a7[a7.sampler == sampler].sort_values("steps")
        out[f"figA7 {sampler} precision at " + " / ".join(str(s) for s in r.steps) + " DDIM steps"] = " / ".join(
            f"{v:.3f}" for v in r.precision
        )
    for guide in ("classifier", "discriminator"):
        acc = pd.read_csv(results / f"{guide}/accuracy.csv")
        acc = acc[acc.condition == "as is"].set_index("timestep")
        ts = [t for t in (0, 10, 25, 100) if t in acc.index]
        out[f"{guide} held-out accuracy at t = " + " / ".join(map(str, ts))] = " / ".join(
            f"{acc.accuracy[t]:.3f}" for t in ts
        )
    return out


def interval_numbers(results: Path) -> dict[str, tuple[float, float, float]]:
    """quantity → (value, low, high) for every headline number the run's files give an interval for."""
    out: dict[str, tuple[float, float, float]] = {}
    b = pd.read_csv(results / "guidance/fig4b_fidelity.csv")
    for r in b[b.metric == "improved_precision"].itertuples():
        out[f"fig4b precision ({r.space}) α = {r.alpha:g}, β = {r.beta:g}"] = (r.value, r.low, r.high)
    for space in (SPACE, "classifier"):
        sets = pd.read_csv(results / f"metrics/{space}_sets.csv").set_index("set")
        for name in sets.index.drop("real", errors="ignore"):
            for metric in ("precision", "density", "coverage"):
                row = sets.loc[name]
                out[f"{name} {metric} ({space})"] = (row[metric], row[f"{metric}_low"], row[f"{metric}_high"])
    table1 = pd.read_csv(results / "table1.csv")
    for r in table1[table1.sampler == "guided"].itertuples():
        out[f"Table 1 speed-up ({r.space}) at q {r.quantile_low:g}–{r.quantile_high:g}"] = (
            r.speedup,
            r.speedup_low,
            r.speedup_high,
        )
    return out


def compare_intervals(before: dict, after: dict) -> list[str]:
    """Markdown rows: before [interval], after [interval], after inside before's interval, overlap."""
    rows = ["| quantity | before [95 %] | after [95 %] | after in before's interval | intervals overlap |"]
    rows.append("|---|---|---|---|---|")
    for key in before.keys() & after.keys():
        (v0, lo0, hi0), (v1, lo1, hi1) = before[key], after[key]
        inside = "yes" if lo0 <= v1 <= hi0 else "no"
        overlap = "yes" if lo1 <= hi0 and lo0 <= hi1 else "no"
        rows.append(
            f"| {key} | {v0:.3f} [{lo0:.3f}, {hi0:.3f}] | {v1:.3f} [{lo1:.3f}, {hi1:.3f}] | {inside} | {overlap} |"
        )
    header, rule, *body = rows
    return [header, rule, *sorted(body)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results")
    parser.add_argument("--before", default=None, help="an earlier run's results folder, shown first")
    args = parser.parse_args()
    now = figure_numbers(Path(args.results))
    if args.before is None:
        print("| quantity | value |\n|---|---|")
        for key, value in now.items():
            print(f"| {key} | {value} |")
        return 0
    before = figure_numbers(Path(args.before))
    print("| quantity | before | after |\n|---|---|---|")
    for key in dict.fromkeys([*before, *now]):
        print(f"| {key} | {before.get(key, '–')} | {now.get(key, '–')} |")
    rows = compare_intervals(interval_numbers(Path(args.before)), interval_numbers(Path(args.results)))
    inside = sum(row.split(" | ")[-2] == "yes" for row in rows[2:])
    print(f"\n{inside} of {len(rows) - 2} values with intervals lie inside the earlier run's interval\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
