rule train_ddpm:
    """The class-conditional DDPM (ADM U-Net, ε-prediction). Resumes from
    results/ddpm/checkpoint.pt when a previous run of the same configuration was cut off."""
    input:
        "results/data/train.npz",
    output:
        model="results/ddpm/model.pt",
        loss="results/ddpm/loss.csv",
        snapshots=expand("results/ddpm/snapshots/step_{step}.pt", step=config["ddpm"]["train"].get("snapshots", [])),
    log:
        "logs/train_ddpm.log",
    benchmark:
        "results/benchmarks/train_ddpm/train_ddpm.tsv"
    priority: 50  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_ddpm"]["cpus_per_task"]
    resources:
        **stage_resources("train_ddpm"),
    params:
        cfg=section("ddpm", "diffusion"),
        checkpoint="results/ddpm/checkpoint.pt",
        device=config["device"],
    shell:
        "lowdensity --gpus {resources.gpu} train-ddpm --params {params.cfg:q} --data {input} --model {output.model}"
        " --loss_csv {output.loss} --checkpoint {params.checkpoint} --snapshots results/ddpm/snapshots"
        " --device {params.device} 2> {log}"


rule sample_baseline:
    """One shard of uniform (baseline) samples, paper Eq. 2."""
    input:
        "results/ddpm/model.pt",
    output:
        "results/samples/baseline/shard_{shard}.npz",
    log:
        "logs/sample_baseline/{shard}.log",
    benchmark:
        "results/benchmarks/sample_baseline/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    priority: 40  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        cfg=section("sampling"),
        device=config["device"],
    shell:
        "lowdensity sample --params {params.cfg:q} --model {input} --shard {wildcards.shard}"
        " --out {output} --device {params.device} 2> {log}"


rule gather_samples:
    """All shards of one sample set (baseline, guided or gan) in sample order."""
    input:
        shards=lambda wildcards: expand(f"results/samples/{wildcards.generator}/shard_{{shard}}.npz", shard=SHARDS),
        data=SHAPE_OF_DATA,
    output:
        "results/samples/{generator}.npz",
    log:
        "logs/gather_samples/{generator}.log",
    benchmark:
        "results/benchmarks/gather_samples/{generator}.tsv"
    wildcard_constraints:
        generator="|".join(GENERATORS + ["discriminator_pool"]),
    priority: 40  # the baseline set gates the discriminator (critical path); cheap for the others
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        shards=as_json("shards"),
    shell:
        "lowdensity gather --data {input.data} --out {output} --shards {params.shards:q} 2> {log}"


rule samples_grid:
    """A quick look at a sample set: one row per class."""
    input:
        samples="results/samples/{generator}.npz",
        data=SHAPE_OF_DATA,
    output:
        report(
            "results/samples/{generator}_grid.png",
            caption="../report/samples_grid.rst",
            category="Samples",
            subcategory="{generator}",
        ),
    log:
        "logs/samples_grid/{generator}.log",
    benchmark:
        "results/benchmarks/samples_grid/{generator}.tsv"
    wildcard_constraints:
        generator="|".join(GENERATORS),
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        per_class=config["grid"]["per_class"],
    shell:
        "lowdensity grid --samples {input.samples} --data {input.data} --out {output} --per_class {params.per_class} --title '{wildcards.generator} samples' 2> {log}"
