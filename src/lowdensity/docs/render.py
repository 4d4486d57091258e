"""Render the documentation's generated pages into `docs/generated/` (and the README's results
table): the pages that need no run from the repository's files, the run's pages from a results
folder. One function, called by `lowdensity render-docs`, the `docs` rule and `make docs`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from lowdensity.docs.provenance import git_commit, machine_description, stamp
from lowdensity.docs.run_pages import RunPages, replace_readme_block
from lowdensity.docs.static_pages import render_configuration, render_gpu_hours, render_performance
from lowdensity.io import atomic_write_text

STATIC_PAGES = ("configuration", "performance", "gpu_hours")
RUN_PAGES = ("results", "samplers", "fidelity_study")


def render_docs(
    *,
    pages: list[str],
    repo: str | Path = ".",
    workdir: str | Path = ".",
    out: str | Path = "docs/generated",
    extractors: list[str] | None = None,
    config_label: str = "config.yaml",
    readme: str | Path | None = None,
) -> list[Path]:
    """Write the named pages into `out` and return their paths. Static pages read `repo`'s schema,
    config.yaml and benchmarks/runs; run pages read `workdir`'s results/ and paper_figures/ (the
    run of `config_label` with these feature spaces, the first being the figures') and are
    stamped with the commit and this machine. With `readme`, its results block is rewritten too.

    Args:
        pages: which pages: configuration, performance, gpu_hours, results, samplers, fidelity_study.
        repo: the repository (schema, config.yaml, benchmarks/runs).
        workdir: the run's folder holding results/ and paper_figures/.
        out: where the pages go.
        extractors: the run's feature spaces, the figures' first.
        config_label: the configuration files of the run, for the stamp.
        readme: README.md whose results block to rewrite (with the results page).
    """
    repo, out = Path(repo), Path(out)
    unknown = sorted(set(pages) - set(STATIC_PAGES) - set(RUN_PAGES))
    if unknown:
        raise ValueError(f"unknown page(s) {unknown}: choose from {STATIC_PAGES + RUN_PAGES}")
    written = []

    def write(name: str, text: str) -> None:
        path = out / f"{name}.md"
        atomic_write_text(path, text if text.endswith("\n") else text + "\n")
        written.append(path)

    if "configuration" in pages:
        write("configuration", render_configuration(repo / "src/lowdensity/config.schema.yaml", repo / "config.yaml"))
    if "performance" in pages:
        # the fragment is included into docs/performance.md, so its image is linked from there
        write(
            "performance", render_performance(repo / "benchmarks/runs", out / "img/runs.png", "generated/img/runs.png")
        )
    if "gpu_hours" in pages:
        write("gpu_hours", render_gpu_hours(repo / "benchmarks/runs"))
    if set(pages) & set(RUN_PAGES):
        if not extractors:
            raise ValueError("the run's pages need the configured feature spaces (extractors)")
        commit, machine = git_commit(repo), machine_description()
        header = stamp(config_label, commit, machine)
        if "results" in pages:
            results = RunPages(workdir, extractors, out / "img/figures", "img/figures")
            write("results", results.results_page(header))
            if readme:
                text = Path(readme).read_text()
                # the README names no commit: the results page it links to carries the full stamp
                block = (
                    f"*From the run of `{config_label}` on {machine}, rendered on {date.today().isoformat()}.*\n\n"
                    f"{results.summary_table()}"
                )
                atomic_write_text(readme, replace_readme_block(text, block))
                written.append(Path(readme))
        if "fidelity_study" in pages:
            # included into docs/fidelity-study.md, so its images are linked from there
            write(
                "fidelity_study",
                RunPages(
                    workdir, extractors, out / "img/fidelity_study", "generated/img/fidelity_study"
                ).fidelity_study_page(header),
            )
        if "samplers" in pages:
            # included into docs/samplers.md, so its images are linked from there
            write(
                "samplers",
                RunPages(workdir, extractors, out / "img/samplers", "generated/img/samplers").samplers_page(header),
            )
    return written
