G = config["guidance"]
SCORES = "results/guidance/hardness.csv"


rule fig3:
    """α × β grid of samples from one seed per shown class."""
    input:
        cells=cell_paths(cell_name("hardness", a, b) for a in G["fig3"]["alphas"] for b in G["fig3"]["betas"]),
        scores=SCORES,
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig3.pdf", caption="../report/fig3.rst", category="Guided sampling"),
        csv="results/fig3.csv",
    params:
        cfg=json.dumps(G["fig3"]),
    log:
        "logs/figures/fig3.log",
    benchmark:
        "results/benchmarks/fig3/fig3.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure fig3 --params {params.cfg:q} --data {input.data} --out {output.pdf} --csv {output.csv} {input.cells} {input.scores} 2> {log}"


rule fig4b_fidelity:
    """Improved precision and PRD (F1/8, F8) of figure 4b's cells, in the classifier's and the first
    extractor's space, against the evaluation reference, with bootstrap intervals."""
    input:
        reference=[features(space, "reference") for space in FIG4B_SPACES],
        neighbours=[f"results/metrics/{space}/reference_neighbours.npz" for space in FIG4B_SPACES],
        cells=[features(space, f"cell_{cell}") for space in FIG4B_SPACES for cell in FIG4B_CELLS.values()],
    output:
        "results/guidance/fig4b_fidelity.csv",
    params:
        cfg=json.dumps({**{k: G["fig4b"][k] for k in ("alpha", "bootstrap", "level", "seed", "prd")}, "precision_k": G["precision"]["k"]}, sort_keys=True),
        reference=named_inputs(FIG4B_SPACES, "reference"),
        neighbours=named_inputs(FIG4B_SPACES, "neighbours"),
        cells=named_inputs([f"{space}:{weight_text(b)}" for space in FIG4B_SPACES for b in FIG4B_CELLS], "cells"),
        device=config["device"],
    log:
        "logs/fig4b_fidelity.log",
    benchmark:
        "results/benchmarks/fig4b_fidelity/fig4b_fidelity.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),  # the ball tests search the whole reference
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity fig4b-fidelity --params {params.cfg:q} --reference {params.reference} --neighbours {params.neighbours}"
        " --out {output} --device {params.device} {params.cells} 2> {log}"


rule fig4:
    """(a) hardness per α at β = 0; (b) improved precision and PRD F1/8 per β at the fixed α."""
    input:
        scores=SCORES,
        precision="results/guidance/fig4b_fidelity.csv",
    output:
        pdf=report("paper_figures/fig4.pdf", caption="../report/fig4.rst", category="Guided sampling"),
        csv="results/fig4.csv",
    params:
        cfg=json.dumps({"fig4a_alphas": G["fig4a_alphas"], "fig4b": {k: G["fig4b"][k] for k in ("alpha", "betas")}}),
    log:
        "logs/figures/fig4.log",
    benchmark:
        "results/benchmarks/fig4/fig4.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure fig4 --params {params.cfg:q} --out {output.pdf} --csv {output.csv} {input.scores} {input.precision} 2> {log}"


rule fig5:
    """Guided vs baseline pairs from identical seeds."""
    input:
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig5.pdf", caption="../report/fig5.rst", category="Guided sampling"),
        csv="results/fig5.csv",
    params:
        cfg=json.dumps({"pairs": G["pairs"]}),
    log:
        "logs/figures/fig5.log",
    benchmark:
        "results/benchmarks/fig5/fig5.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure fig5 --params {params.cfg:q} --data {input.data} --out {output.pdf} --csv {output.csv} {input.baseline} {input.guided} 2> {log}"


rule fig6:
    """Two classes: baseline (left) vs guided (right), same seeds."""
    input:
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig6.pdf", caption="../report/fig6.rst", category="Guided sampling"),
        csv="results/fig6.csv",
    params:
        cfg=json.dumps({"fig6_classes": G["fig6_classes"], "per_class": 16}),
    log:
        "logs/figures/fig6.log",
    benchmark:
        "results/benchmarks/fig6/fig6.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure fig6 --params {params.cfg:q} --data {input.data} --out {output.pdf} --csv {output.csv} {input.baseline} {input.guided} 2> {log}"


rule fig10:
    """Progressive α for fixed seeds."""
    input:
        cells=cell_paths(cell_name("hardness", a, G["fig10"]["beta"]) for a in G["fig10"]["alphas"]),
        scores=SCORES,
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig10.pdf", caption="../report/fig10.rst", category="Guided sampling"),
        csv="results/fig10.csv",
    params:
        cfg=json.dumps(G["fig10"]),
    log:
        "logs/figures/fig10.log",
    benchmark:
        "results/benchmarks/fig10/fig10.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure fig10 --params {params.cfg:q} --data {input.data} --out {output.pdf} --csv {output.csv} {input.cells} {input.scores} 2> {log}"


rule figA5:
    """Guidance-loss ablation: hardness (Eq. 4) vs softmax (appendix A.5) at matched α, β."""
    input:
        scores=SCORES,
    output:
        pdf=report("paper_figures/figA5.pdf", caption="../report/figA5.rst", category="Guided sampling"),
        csv="results/figA5.csv",
    params:
        cfg=json.dumps(G["figA5"]),
    log:
        "logs/figures/figA5.log",
    benchmark:
        "results/benchmarks/figA5/figA5.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity figure figA5 --params {params.cfg:q} --out {output.pdf} --csv {output.csv} {input.scores} 2> {log}"
