"""The measured cost of a run, per stage, from the files of Snakemake's `benchmark:` directive.

Every rule writes `results/benchmarks/<rule>/<job>.tsv` (Snakemake's columns: `s` wall-clock
seconds, `cpu_time` seconds, `max_rss` MB, …). A stage is a rule; its jobs are summed (wall-clock
and CPU time) and their largest peak memory kept. The run's wall-clock is the span from the
first job's start (its file's modification time less its seconds) to the last job's end, so
jobs that ran side by side count once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def read_benchmarks(folder: str | os.PathLike) -> pd.DataFrame:
    """One row per job: rule, job, wall-clock s, CPU s, peak RSS MB, start and end (epoch s)."""
    rows = []
    for path in sorted(Path(folder).glob("*/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty:
            continue
        numbers = table.apply(pd.to_numeric, errors="coerce").mean()  # the mean over repeats, if any
        end = path.stat().st_mtime
        rows.append(
            {
                "rule": path.parent.name,
                "job": path.stem,
                "wall_s": float(numbers["s"]),
                "cpu_s": float(numbers.get("cpu_time", float("nan"))),
                "max_rss_mb": float(numbers.get("max_rss", float("nan"))),
                "start": end - float(numbers["s"]),
                "end": end,
            }
        )
    if not rows:
        raise FileNotFoundError(
            f"no benchmark files under {folder}: run the pipeline first (every rule writes one there)"
        )
    return pd.DataFrame(rows)


def stage_table(jobs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per rule: jobs, summed wall-clock and CPU seconds, the longest job, the largest peak memory
    (slowest stage first); and the run's wall-clock span."""
    table = (
        jobs.groupby("rule")
        .agg(
            jobs=("job", "size"),
            wall_s=("wall_s", "sum"),
            longest_job_s=("wall_s", "max"),
            cpu_s=("cpu_s", "sum"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )
    table = table.sort_values("wall_s", ascending=False, kind="stable").reset_index(drop=True)
    table["share_of_job_time"] = table["wall_s"] / table["wall_s"].sum()
    span = float(jobs["end"].max() - jobs["start"].min())
    return table, span


def render(table: pd.DataFrame, span: float) -> str:
    lines = [
        f"Run wall-clock (first job's start to last job's end): {span / 60:.1f} min; "
        f"job time summed over rules: {table['wall_s'].sum() / 60:.1f} min.",
        "",
        "| stage (rule) | jobs | wall-clock (summed) | longest job | CPU time | peak memory | share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.rule} | {r.jobs} | {r.wall_s / 60:.1f} min | {r.longest_job_s:.0f} s | {r.cpu_s / 60:.1f} min | "
            f"{r.max_rss_mb:.0f} MB | {r.share_of_job_time:.0%} |"
        )
    return "\n".join(lines) + "\n"


def stage_costs(
    *,
    benchmarks: str = "results/benchmarks",
    out: str = "results/stage_costs.csv",
    markdown: str | None = "results/stage_costs.md",
) -> str:
    """Write the per-stage table (CSV, and Markdown when asked) and return the Markdown.

    Args:
        benchmarks: the folder of the rules' benchmark files.
        out: the per-stage table (CSV).
        markdown: the same as Markdown.
    """
    from lowdensity.io import atomic_to_csv, atomic_write_text

    table, span = stage_table(read_benchmarks(benchmarks))
    atomic_to_csv(table.assign(run_wall_clock_s=span), out)
    text = render(table, span)
    if markdown:
        atomic_write_text(markdown, text)
    return text
