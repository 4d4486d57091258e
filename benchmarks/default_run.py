"""Wall-clock per stage and in total of a run of the default DAG, from its benchmark files.

    python benchmarks/default_run.py                      # the run in results/ (after `make run`)
    python benchmarks/default_run.py --run                # run `snakemake` first (every core), then report
    python benchmarks/default_run.py --before OLD.csv     # and each stage's ratio to an earlier run's table

Prints the per-stage table of `lowdensity stage-costs` (wall-clock summed over a stage's jobs,
longest job, CPU time, peak memory, share) and the run's wall-clock span, and writes them to
results/stage_costs.csv and .md, the table the README quotes. With --before (an earlier
results/stage_costs.csv, e.g. kept from the last release), each stage's summed wall-clock is
also shown as now / before, and the run's span likewise: ratios measured on one machine,
which carry across machines better than seconds do.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from lowdensity.stage_costs import stage_costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run snakemake (the default target) first")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--results", default="results")
    parser.add_argument("--before", default=None, help="an earlier run's stage_costs.csv to compare with")
    args = parser.parse_args()
    if args.run:
        subprocess.run(["snakemake", "--cores", args.cores], check=True)
    results = Path(args.results)
    print(stage_costs(str(results / "benchmarks"), str(results / "stage_costs.csv"), str(results / "stage_costs.md")))
    if args.before:
        now, before = pd.read_csv(results / "stage_costs.csv"), pd.read_csv(args.before)
        both = now.merge(before, on="rule", how="outer", suffixes=("", "_before")).fillna({"wall_s": 0.0, "wall_s_before": 0.0})
        both = both.sort_values("wall_s_before", ascending=False)
        print("| stage (rule) | before | now | now / before |\n|---|---:|---:|---:|")
        for r in both.itertuples():
            ratio = f"{r.wall_s / r.wall_s_before:.2f}" if r.wall_s_before else "new"
            print(f"| {r.rule} | {r.wall_s_before / 60:.1f} min | {r.wall_s / 60:.1f} min | {ratio} |")
        span, span_before = now["run_wall_clock_s"].iloc[0], before["run_wall_clock_s"].iloc[0]
        print(f"| **run (wall-clock span)** | {span_before / 60:.1f} min | {span / 60:.1f} min | {span / span_before:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
