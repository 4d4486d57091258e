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
    log:
        "logs/figures/fig3.log",
    benchmark:
        "results/benchmarks/fig3/fig3.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        cells=as_json("cells"),
        alphas=json.dumps(G["fig3"]["alphas"]),
        betas=json.dumps(G["fig3"]["betas"]),
        classes=json.dumps(G["fig3"]["classes"]),
    shell:
        "lowdensity fig3 --cells {params.cells:q} --scores {input.scores} --data {input.data} --alphas {params.alphas:q}"
        " --betas {params.betas:q} --classes {params.classes:q} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig4b_fidelity:
    """Improved precision and PRD (F1/8, F8) of figure 4b's cells, in the classifier's and the first
    extractor's space, against the evaluation reference, with bootstrap intervals."""
    input:
        reference=[features(space, "reference") for space in FIG4B_SPACES],
        neighbours=[f"results/metrics/{space}/reference_neighbours.npz" for space in FIG4B_SPACES],
        cells=[features(space, f"cell_{cell}") for space in FIG4B_SPACES for cell in FIG4B_CELLS.values()],
    output:
        "results/guidance/fig4b_fidelity.csv",
    log:
        "logs/fig4b_fidelity.log",
    benchmark:
        "results/benchmarks/fig4b_fidelity/fig4b_fidelity.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),  # the ball tests search the whole reference
    params:
        cfg=json.dumps(
            {
                **{k: G["fig4b"][k] for k in ("alpha", "prd")},
                "precision_k": G["precision"]["k"],
                "intervals": {
                    **{k: G["fig4b"][k] for k in ("bootstrap", "level", "seed")},
                    **{k: config["evaluation"]["intervals"][k] for k in ("vendi_bootstrap", "vendi_orders")},
                },
            },
            sort_keys=True,
        ),
        reference=as_json("reference", FIG4B_SPACES),
        neighbours=as_json("neighbours", FIG4B_SPACES),
        cells=lambda wildcards, input: json.dumps(
            {
                space: {weight_text(b): path for b, path in zip(FIG4B_CELLS, input.cells[i * len(FIG4B_CELLS) :])}
                for i, space in enumerate(FIG4B_SPACES)
            }
        ),
        device=config["device"],
    shell:
        "lowdensity fig4b-fidelity --params {params.cfg:q} --references {params.reference:q}"
        " --neighbours {params.neighbours:q} --cells {params.cells:q} --out {output} --device {params.device} 2> {log}"


rule fig4:
    """(a) hardness per α at β = 0; (b) improved precision and PRD F1/8 per β at the fixed α."""
    input:
        scores=SCORES,
        precision="results/guidance/fig4b_fidelity.csv",
    output:
        pdf=report("paper_figures/fig4.pdf", caption="../report/fig4.rst", category="Guided sampling"),
        csv="results/fig4.csv",
    log:
        "logs/figures/fig4.log",
    benchmark:
        "results/benchmarks/fig4/fig4.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        alphas=json.dumps(G["fig4a_alphas"]),
        fig4b_alpha=G["fig4b"]["alpha"],
        betas=json.dumps(G["fig4b"]["betas"]),
    shell:
        "lowdensity fig4 --scores {input.scores} --precision {input.precision} --alphas {params.alphas:q}"
        " --fig4b_alpha {params.fig4b_alpha} --betas {params.betas:q} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig5:
    """Guided vs baseline pairs from identical seeds."""
    input:
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig5.pdf", caption="../report/fig5.rst", category="Guided sampling"),
        csv="results/fig5.csv",
    log:
        "logs/figures/fig5.log",
    benchmark:
        "results/benchmarks/fig5/fig5.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        pairs=G["pairs"],
    shell:
        "lowdensity fig5 --baseline {input.baseline} --guided {input.guided} --data {input.data} --pairs {params.pairs}"
        " --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig6:
    """Two classes: baseline (left) vs guided (right), same seeds."""
    input:
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig6.pdf", caption="../report/fig6.rst", category="Guided sampling"),
        csv="results/fig6.csv",
    log:
        "logs/figures/fig6.log",
    benchmark:
        "results/benchmarks/fig6/fig6.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        classes=json.dumps(G["fig6_classes"]),
        per_class=16,
    shell:
        "lowdensity fig6 --baseline {input.baseline} --guided {input.guided} --data {input.data} --classes {params.classes:q}"
        " --per_class {params.per_class} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig10:
    """Progressive α for fixed seeds."""
    input:
        cells=cell_paths(cell_name("hardness", a, G["fig10"]["beta"]) for a in G["fig10"]["alphas"]),
        scores=SCORES,
        data=SHAPE_OF_DATA,
    output:
        pdf=report("paper_figures/fig10.pdf", caption="../report/fig10.rst", category="Guided sampling"),
        csv="results/fig10.csv",
    log:
        "logs/figures/fig10.log",
    benchmark:
        "results/benchmarks/fig10/fig10.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        cells=as_json("cells"),
        alphas=json.dumps(G["fig10"]["alphas"]),
        beta=G["fig10"]["beta"],
        seeds=G["fig10"]["seeds"],
    shell:
        "lowdensity fig10 --cells {params.cells:q} --scores {input.scores} --data {input.data} --alphas {params.alphas:q}"
        " --beta {params.beta} --seeds {params.seeds} --out {output.pdf} --csv {output.csv} 2> {log}"


rule figA5:
    """Guidance-loss ablation: hardness (Eq. 4) vs softmax (appendix A.5) at matched α, β."""
    input:
        scores=SCORES,
    output:
        pdf=report("paper_figures/figA5.pdf", caption="../report/figA5.rst", category="Guided sampling"),
        csv="results/figA5.csv",
    log:
        "logs/figures/figA5.log",
    benchmark:
        "results/benchmarks/figA5/figA5.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        alphas=json.dumps(G["figA5"]["alphas"]),
        beta=G["figA5"]["beta"],
    shell:
        "lowdensity figA5 --scores {input.scores} --alphas {params.alphas:q} --beta {params.beta}"
        " --out {output.pdf} --csv {output.csv} 2> {log}"
