# Beyond the paper: the paper's α/β sampler and its successors (Boost-and-Skip, the self-guided
# minority sampler, minority guidance) on the same seeds, metrics and cost. Not in `all`:
# `snakemake samplers` builds figure S1, results/samplers.csv and results/table1_samplers.csv.


rule train_minority_classifier:
    """Minority guidance's minority scores of the training images, their L quantile classes, and
    the noisy classifier p(l̃ | x_t) trained on them (resumes from its checkpoint)."""
    input:
        ddpm="results/ddpm/model.pt",
        classifier="results/classifier/model.pt",
        train="results/data/train.npz",
        val="results/data/val.npz",
    output:
        model="results/samplers/minority/model.pt",
        scores="results/samplers/minority/scores.csv",
        accuracy="results/samplers/minority/accuracy.csv",
    log:
        "logs/train_minority_classifier.log",
    benchmark:
        "results/benchmarks/train_minority_classifier/train_minority_classifier.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    params:
        cfg=json.dumps(
            {
                "samplers": {
                    "minority_guidance": config["samplers"]["minority_guidance"],
                    "distance": config["samplers"]["distance"],
                },
                "diffusion": config["diffusion"],
            },
            sort_keys=True,
        ),
        checkpoint="results/samplers/minority/checkpoint.pt",
        device=config["device"],
    shell:
        "lowdensity train-minority-classifier --params {params.cfg:q} --ddpm {input.ddpm} --classifier {input.classifier}"
        " --data {input.train} --val {input.val} --model {output.model} --scores {output.scores}"
        " --accuracy {output.accuracy} --checkpoint {params.checkpoint} --device {params.device} 2> {log}"


rule sample_sweep_point:
    """One point of a sampler's strength sweep: the baseline's first samplers.num_samples seeds and labels."""
    input:
        unpack(sweep_inputs),
    output:
        "results/samples/sweep/{sampler}_{strength}.npz",
    log:
        "logs/sample_sweep_point/{sampler}_{strength}.log",
    benchmark:
        "results/benchmarks/sample_sweep_point/{sampler}_{strength}.tsv"
    wildcard_constraints:
        sampler="baseline|" + "|".join(SWEPT),
        strength=WEIGHT_PATTERN,
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        cfg=sweep_params,
        guides=guide_options,
        device=config["device"],
    shell:
        "lowdensity sample-sweep-point --params {params.cfg:q} --sampler {wildcards.sampler} --strength {wildcards.strength}"
        " --model {input.ddpm} --guides {params.guides:q} --out {output} --device {params.device} 2> {log}"


rule samplers_table:
    """Every point in every space: precision, recall, medians of hardness/AvgkNN/LOF, Fréchet
    distance, Rarity score, seconds per image."""
    input:
        points=[SWEEP_SETS[f"sweep_{p}"] for p in SWEEP_POINTS],
        references=[features(space, "reference") for space in SAMPLER_SPACES],
        neighbours=[f"results/metrics/{space}/reference_neighbours.npz" for space in SAMPLER_SPACES],
        features=[features(space, f"sweep_{p}") for space in SAMPLER_SPACES for p in SWEEP_POINTS],
        summaries=[set_metrics(space, f"sweep_{p}", "_summary") for space in SAMPLER_SPACES for p in SWEEP_POINTS],
    output:
        csv=report("results/samplers.csv", caption="../report/samplers.rst", category="Beyond the paper"),
        markdown="results/samplers.md",
    log:
        "logs/samplers_table.log",
    benchmark:
        "results/benchmarks/samplers_table/samplers_table.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        rarity_k=config["samplers"]["rarity_k"],
        points=as_json("points", SWEEP_POINTS),
        spaces=lambda wildcards, input: json.dumps(
            {
                space: {
                    "reference": input.references[i],
                    "neighbours": input.neighbours[i],
                    "sets": {
                        point: [input.features[j], input.summaries[j]]
                        for j, point in enumerate(SWEEP_POINTS, start=i * len(SWEEP_POINTS))
                    },
                }
                for i, space in enumerate(SAMPLER_SPACES)
            }
        ),
    shell:
        "lowdensity samplers-table --rarity_k {params.rarity_k} --points {params.points:q} --spaces {params.spaces:q}"
        " --out {output.csv} --markdown {output.markdown} 2> {log}"


rule figS1:
    """Fidelity against density per sampler, one curve each over its strengths."""
    input:
        "results/samplers.csv",
    output:
        pdf=report("paper_figures/figS1.pdf", caption="../report/figS1.rst", category="Beyond the paper"),
        csv="results/figS1.csv",
    log:
        "logs/figures/figS1.log",
    benchmark:
        "results/benchmarks/figS1/figS1.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        hardness_space=config["table1"]["space"],
    shell:
        "lowdensity figS1 --table {input} --hardness_space {params.hardness_space} --out {output.pdf} --csv {output.csv} 2> {log}"


rule table1_samplers:
    """Table 1 for every sampler at its default strength (the same seeds as the baseline point)."""
    input:
        metrics=[set_metrics(config["table1"]["space"], s) for s in ["real"] + [f"sweep_{p}" for p in DEFAULT_POINTS]],
        points=[SWEEP_SETS[f"sweep_{p}"] for p in DEFAULT_POINTS],
    output:
        csv=report("results/table1_samplers.csv", caption="../report/table1_samplers.rst", category="Beyond the paper"),
        markdown="results/table1_samplers.md",
    log:
        "logs/table1_samplers.log",
    benchmark:
        "results/benchmarks/table1_samplers/table1_samplers.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        cfg=section("table1"),
        named=as_json("points", DEFAULT_POINTS),
        metrics=as_json("metrics"),
    shell:
        "lowdensity table1-samplers --params {params.cfg:q} --metrics {params.metrics:q} --points {params.named:q}"
        " --out {output.csv} --markdown {output.markdown} 2> {log}"


rule samplers:
    """The comparison of the low-density samplers (not in `all`)."""
    input:
        "paper_figures/figS1.pdf",
        "results/samplers.csv",
        "results/table1_samplers.csv",
        "results/samplers/minority/accuracy.csv",
