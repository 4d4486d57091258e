"""Wall-clock per stage and in total of a run of the default DAG, from its benchmark files.

    python benchmarks/default_run.py                      # the run in results/ (after `make run`)
    python benchmarks/default_run.py --run                # run `snakemake` first (every core), then report
    python benchmarks/default_run.py --before OLD.csv     # and each stage's ratio to an earlier run's table
    python benchmarks/default_run.py --keep [--minutes-with-setup M] [--note TEXT]
                                                          # record the run in benchmarks/runs/ (the docs' tables)

Prints the per-stage table of `lowdensity stage-costs` (wall-clock summed over a stage's jobs,
longest job, CPU time, peak memory, share) and the run's wall-clock span, and writes them to
results/stage_costs.csv and .md. With --before (an earlier
results/stage_costs.csv, e.g. kept from the last release), each stage's summed wall-clock is
also shown as now / before, and the run's span likewise: ratios measured on one machine,
which carry across machines better than seconds do. With --keep, the stage table is copied to
benchmarks/runs/default_<cores>cores_<commit>.csv and the run gets a row (date, commit, machine)
in benchmarks/runs/default_runs.csv, from which `make docs` renders the performance page.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from lowdensity.docs.provenance import cpu_model, git_commit, gpu_models, usable_cores
from lowdensity.stages.stage_costs import stage_costs

RUNS = Path(__file__).with_name("runs")


def keep_run(stage_costs_csv: Path, minutes_with_setup: float | None, note: str, commit: str | None = None) -> Path:
    """Copy a run's stage costs into benchmarks/runs/ and append its row to default_runs.csv
    (`commit`: the code the run measured, by default the checked-out one)."""
    commit, cores = commit or git_commit(Path(__file__).parent), usable_cores()
    target = RUNS / f"default_{cores}cores_{commit}.csv"
    shutil.copyfile(stage_costs_csv, target)
    machine = cpu_model() + "".join(f", {g}" for g in gpu_models())
    row = pd.DataFrame(
        [
            {
                "date": datetime.date.today().isoformat(),
                "commit": commit,
                "machine": machine,
                "cores": cores,
                "stage_costs": target.name,
                "minutes_with_setup": minutes_with_setup,
                "note": note,
            }
        ]
    )
    row.to_csv(RUNS / "default_runs.csv", mode="a", header=False, index=False)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run snakemake (the default target) first")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--results", default="results")
    parser.add_argument("--before", default=None, help="an earlier run's stage_costs.csv to compare with")
    parser.add_argument("--keep", action="store_true", help="record the run in benchmarks/runs/")
    parser.add_argument(
        "--minutes-with-setup", type=float, default=None, help="the whole `make run`, when it was timed"
    )
    parser.add_argument("--note", default="", help="what is special about this run")
    parser.add_argument("--commit", default=None, help="the commit whose code ran (default: the checked-out one)")
    args = parser.parse_args()
    if args.run:
        subprocess.run(["snakemake", "--cores", args.cores], check=True)
    results = Path(args.results)
    print(
        stage_costs(
            benchmarks=str(results / "benchmarks"),
            out=str(results / "stage_costs.csv"),
            markdown=str(results / "stage_costs.md"),
        )
    )
    if args.before:
        now, before = pd.read_csv(results / "stage_costs.csv"), pd.read_csv(args.before)
        both = now.merge(before, on="rule", how="outer", suffixes=("", "_before")).fillna(
            {"wall_s": 0.0, "wall_s_before": 0.0}
        )
        both = both.sort_values("wall_s_before", ascending=False)
        print("| stage (rule) | before | now | now / before |\n|---|---:|---:|---:|")
        for r in both.itertuples():
            ratio = f"{r.wall_s / r.wall_s_before:.2f}" if r.wall_s_before else "new"
            print(f"| {r.rule} | {r.wall_s_before / 60:.1f} min | {r.wall_s / 60:.1f} min | {ratio} |")
        span, span_before = now["run_wall_clock_s"].iloc[0], before["run_wall_clock_s"].iloc[0]
        print(
            f"| **run (wall-clock span)** | {span_before / 60:.1f} "
            f"min | {span / 60:.1f} min | {span / span_before:.2f} |"
        )
    if args.keep:
        print(f"kept as {keep_run(results / 'stage_costs.csv', args.minutes_with_setup, args.note, args.commit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
