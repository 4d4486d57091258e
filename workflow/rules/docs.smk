# The documentation's generated pages (docs/generated/), rendered from the run's CSVs and
# figures, the schema and benchmarks/runs: `snakemake docs`. The README's results table is
# rewritten too when the run is the repository's own (not a run in another folder).
import os
from pathlib import Path

REPO = Path(workflow.basedir)
# the embedded default first, then the --configfile files merged on top of it, in their order
CONFIG_FILES = sorted(workflow.configfiles, key=lambda p: Path(p).resolve() != (REPO / "config.yaml").resolve())
CONFIG_LABEL = " + ".join(
    os.path.relpath(p, REPO) if Path(p).resolve().is_relative_to(REPO.resolve()) else str(p) for p in CONFIG_FILES
)
README_OPTION = "--readme README.md" if REPO.resolve() == Path.cwd().resolve() else ""


localrules:
    docs,
    docs_static,
    docs_results,
    docs_samplers,
    docs_fidelity_study,


rule docs_static:
    """The pages that need no run: the configuration reference, measured runs, GPU-hours."""
    input:
        schema=REPO / "src/lowdensity/config.schema.yaml",
        config=REPO / "config.yaml",
        runs=sorted((REPO / "benchmarks/runs").glob("*.csv")),
    output:
        "docs/generated/configuration.md",
        "docs/generated/performance.md",
        "docs/generated/gpu_hours.md",
        "docs/generated/img/runs.png",
    log:
        "logs/docs/static.log",
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        repo=REPO,
    shell:
        "lowdensity render-docs --pages '[configuration, performance, gpu_hours]' --repo {params.repo:q} --out docs/generated"
        " > {log} 2>&1"


rule docs_results:
    """The results page: every figure of `all` beside its numbers and the paper's claim."""
    input:
        rules.all.input,
    output:
        page="docs/generated/results.md",
        images=directory("docs/generated/img/figures"),  # not img/results: .gitignore ignores every results/
    log:
        "logs/docs/results.log",
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        repo=REPO,
        extractors=json.dumps(EXTRACTORS),
        config_label=CONFIG_LABEL,
        readme=README_OPTION,
    shell:
        "lowdensity render-docs --pages '[results]' --repo {params.repo:q} --out docs/generated"
        " --extractors {params.extractors:q} --config_label {params.config_label:q} {params.readme} > {log} 2>&1"


rule docs_samplers:
    """The samplers page's numbers, from the comparison of `snakemake samplers`."""
    input:
        rules.samplers.input,
    output:
        page="docs/generated/samplers.md",
        images=directory("docs/generated/img/samplers"),
    log:
        "logs/docs/samplers.log",
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        repo=REPO,
        extractors=json.dumps(EXTRACTORS),
        config_label=CONFIG_LABEL,
    shell:
        "lowdensity render-docs --pages '[samplers]' --repo {params.repo:q} --out docs/generated"
        " --extractors {params.extractors:q} --config_label {params.config_label:q} > {log} 2>&1"


rule docs_fidelity_study:
    """The fidelity study page's numbers, from `snakemake fidelity_study`."""
    input:
        rules.fidelity_study.output,
    output:
        page="docs/generated/fidelity_study.md",
        images=directory("docs/generated/img/fidelity_study"),
    log:
        "logs/docs/fidelity_study.log",
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        repo=REPO,
        extractors=json.dumps(EXTRACTORS),
        config_label=CONFIG_LABEL,
    shell:
        "lowdensity render-docs --pages '[fidelity_study]' --repo {params.repo:q} --out docs/generated"
        " --extractors {params.extractors:q} --config_label {params.config_label:q} > {log} 2>&1"


rule docs:
    """Every generated page of the documentation (runs the whole pipeline, the samplers' comparison
    and the fidelity study)."""
    input:
        rules.docs_static.output,
        rules.docs_results.output,
        rules.docs_samplers.output,
        rules.docs_fidelity_study.output,
