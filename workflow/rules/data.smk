rule prepare_data:
    """One split of the dataset, resized to data.resolution, as uint8 .npz."""
    output:
        "results/data/{split}.npz",
    log:
        "logs/prepare_data/{split}.log",
    benchmark:
        "results/benchmarks/prepare_data/{split}.tsv"
    wildcard_constraints:
        split="train|val",
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["prepare_data"]["cpus_per_task"]
    resources:
        **stage_resources("prepare_data"),
    params:
        cfg=section("data"),
    shell:
        "lowdensity prepare-data --params {params.cfg:q} --split {wildcards.split} --out {output} 2> {log}"


rule real_grid:
    """The first training images of every class, for comparison with the samples."""
    input:
        "results/data/train.npz",
    output:
        report("results/data/train_grid.png", caption="../report/real_grid.rst", category="Samples", subcategory="real"),
    log:
        "logs/real_grid.log",
    benchmark:
        "results/benchmarks/real_grid/real_grid.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        per_class=config["grid"]["per_class"],
    shell:
        "lowdensity grid --samples {input} --data {input} --out {output} --per_class {params.per_class} --title 'real training images' 2> {log}"
