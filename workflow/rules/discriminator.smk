# The real-vs-synthetic discriminator H' (Eq. 6), its Gaussians, the extra synthetic pool, and
# the study of how to train it (`snakemake discriminator_ablation`).
TRAIN_DISCRIMINATOR = (
    "lowdensity --gpus {resources.gpu} train-discriminator --params {params.cfg:q} --data {input.train}"
    " --samples {params.samples:q} {params.classifier} --model {output.model} --accuracy {output.accuracy}"
    " --checkpoint {params.checkpoint} --device {params.device} 2> {log}"
)


rule train_discriminator:
    """Real training images vs as many baseline samples; held-out accuracy and loss per t."""
    input:
        **discriminator_inputs(config["discriminator"]),
    output:
        model="results/discriminator/model.pt",
        accuracy="results/discriminator/accuracy.csv",
    log:
        "logs/train_discriminator.log",
    benchmark:
        "results/benchmarks/train_discriminator/train_discriminator.tsv"
    priority: 30  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    params:
        samples=as_json("samples"),
        cfg=section("discriminator", "diffusion"),
        classifier=classifier_option,
        checkpoint="results/discriminator/checkpoint.pt",
        device=config["device"],
    shell:
        TRAIN_DISCRIMINATOR


rule fit_discriminator_gaussians:
    """Real and synthetic Gaussians of the discriminator's embeddings (H' of Eq. 6)."""
    input:
        **discriminator_inputs(config["discriminator"]),
        model="results/discriminator/model.pt",
    output:
        gaussians="results/discriminator/gaussians.pt",
        summary="results/discriminator/gaussians.csv",
    log:
        "logs/fit_discriminator_gaussians.log",
    benchmark:
        "results/benchmarks/fit_discriminator_gaussians/fit_discriminator_gaussians.tsv"
    priority: 20  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    params:
        samples=as_json("samples"),
        cfg=section("gaussians", "diffusion", "discriminator"),
        device=config["device"],
    shell:
        "lowdensity fit-gaussians --params {params.cfg:q} --model {input.model} --data {input.train}"
        " --samples {params.samples:q} --out {output.gaussians} --summary {output.summary}"
        " --device {params.device} 2> {log}"


rule sample_discriminator_pool:
    """One shard of extra baseline-sampler images for the discriminator: the baseline's seed
    stream continued (seeds sampling.seed + sampling.num_samples + i), as many as any
    discriminator configuration asks for."""
    input:
        "results/ddpm/model.pt",
    output:
        "results/samples/discriminator_pool/shard_{shard}.npz",
    log:
        "logs/sample_discriminator_pool/{shard}.log",
    benchmark:
        "results/benchmarks/sample_discriminator_pool/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        cfg=json.dumps(
            {
                **config["sampling"],
                "num_samples": POOL_SIZE,
                "seed": config["sampling"]["seed"] + config["sampling"]["num_samples"],
            },
            sort_keys=True,
        ),
        device=config["device"],
    shell:
        "lowdensity sample --params {params.cfg:q} --model {input} --shard {wildcards.shard}"
        " --out {output} --device {params.device} 2> {log}"


rule train_discriminator_variant:
    """One variant of the discriminator study: `discriminator` with the variant's overrides."""
    input:
        unpack(lambda wildcards: discriminator_inputs(ABLATION[wildcards.variant])),
    output:
        model="results/discriminator/ablation/{variant}/model.pt",
        accuracy="results/discriminator/ablation/{variant}/accuracy.csv",
    log:
        "logs/train_discriminator_variant/{variant}.log",
    benchmark:
        "results/benchmarks/train_discriminator_variant/{variant}.tsv"
    wildcard_constraints:
        variant="|".join(ABLATION) or "(?!)",  # no variants: matches nothing
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    params:
        samples=as_json("samples"),
        cfg=lambda wildcards: json.dumps(
            {"discriminator": ABLATION[wildcards.variant], "diffusion": config["diffusion"]}, sort_keys=True
        ),
        classifier=classifier_option,
        checkpoint="results/discriminator/ablation/{variant}/checkpoint.pt",
        device=config["device"],
    shell:
        TRAIN_DISCRIMINATOR


rule discriminator_ablation:
    """The study as one table (variant × condition × timestep: accuracy, loss, n) and figure D1,
    with the default discriminator (`discriminator` as configured) as the variant 'default'."""
    input:
        accuracy=["results/discriminator/accuracy.csv"]
        + expand("results/discriminator/ablation/{variant}/accuracy.csv", variant=list(ABLATION)),
    output:
        csv="results/discriminator/ablation.csv",
        pdf=report("paper_figures/figD1.pdf", caption="../report/figD1.rst", category="Guided sampling"),
    log:
        "logs/discriminator_ablation.log",
    benchmark:
        "results/benchmarks/discriminator_ablation/discriminator_ablation.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        named=as_json("accuracy", ["default"] + list(ABLATION)),
        overrides=json.dumps(
            {v["name"]: v["overrides"] for v in config["discriminator_ablation"]["variants"]}, sort_keys=True
        ),
    shell:
        "lowdensity figD1 --accuracy {params.named:q} --overrides {params.overrides:q} --out {output.pdf}"
        " --csv {output.csv} 2> {log}"
