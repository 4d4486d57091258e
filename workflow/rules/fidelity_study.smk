# When does β raise fidelity? The dose–response study (`snakemake fidelity_study`, not in `all`):
# each rung is the DDPM at one training step, with its own baseline set, its own H′ and the β
# sweep at each α in each β form (src/lowdensity/stages/fidelity_study.py).
STUDY_SAMPLING = {**config["sampling"], "shards": 1}


rule study_baseline:
    """A rung's baseline set: the baseline's first fidelity_study.baseline_samples seeds and labels."""
    input:
        rung_model,
    output:
        "results/fidelity_study/{rung}/baseline.npz",
    log:
        "logs/fidelity_study/{rung}/baseline.log",
    benchmark:
        "results/benchmarks/study_baseline/{rung}.tsv"
    wildcard_constraints:
        rung="|".join(RUNGS),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        cfg=json.dumps({**STUDY_SAMPLING, "num_samples": STUDY["baseline_samples"]}, sort_keys=True),
        device=config["device"],
    shell:
        "lowdensity sample --params {params.cfg:q} --model {input} --shard 0 --out {output} --device {params.device} 2> {log}"


rule study_discriminator:
    """A rung's H′: real training images against that rung's baseline set."""
    input:
        **{**discriminator_inputs(STUDY_DISCRIMINATOR), "samples": ["results/fidelity_study/{rung}/baseline.npz"]},
    output:
        model="results/fidelity_study/{rung}/discriminator/model.pt",
        accuracy="results/fidelity_study/{rung}/discriminator/accuracy.csv",
    log:
        "logs/fidelity_study/{rung}/discriminator.log",
    benchmark:
        "results/benchmarks/study_discriminator/{rung}.tsv"
    wildcard_constraints:
        rung="|".join(RUNGS),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    params:
        samples=as_json("samples"),
        cfg=json.dumps({"discriminator": STUDY_DISCRIMINATOR, "diffusion": config["diffusion"]}, sort_keys=True),
        classifier=classifier_option,
        checkpoint="results/fidelity_study/{rung}/discriminator/checkpoint.pt",
        device=config["device"],
    shell:
        TRAIN_DISCRIMINATOR


rule study_discriminator_gaussians:
    """The real and synthetic Gaussians of a rung's H′ (its β term in the paper's form, Eq. 6)."""
    input:
        train="results/data/train.npz",
        samples=["results/fidelity_study/{rung}/baseline.npz"],
        model="results/fidelity_study/{rung}/discriminator/model.pt",
    output:
        gaussians="results/fidelity_study/{rung}/discriminator/gaussians.pt",
        summary="results/fidelity_study/{rung}/discriminator/gaussians.csv",
    log:
        "logs/fidelity_study/{rung}/gaussians.log",
    benchmark:
        "results/benchmarks/study_discriminator_gaussians/{rung}.tsv"
    wildcard_constraints:
        rung="|".join(RUNGS),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    params:
        samples=as_json("samples"),
        cfg=json.dumps(
            {"gaussians": config["gaussians"], "diffusion": config["diffusion"], "discriminator": STUDY_DISCRIMINATOR},
            sort_keys=True,
        ),
        device=config["device"],
    shell:
        "lowdensity fit-gaussians --params {params.cfg:q} --model {input.model} --data {input.train}"
        " --samples {params.samples:q} --out {output.gaussians} --summary {output.summary}"
        " --device {params.device} 2> {log}"


rule study_cell:
    """One (α, β, form) cell of a rung: the baseline's first fidelity_study.cell_samples seeds and labels."""
    input:
        unpack(study_cell_inputs),
    output:
        "results/fidelity_study/{rung}/cells/{cell}.npz",
    log:
        "logs/fidelity_study/{rung}/{cell}.log",
    benchmark:
        "results/benchmarks/study_cell/{rung}_{cell}.tsv"
    wildcard_constraints:
        rung="|".join(RUNGS),
        cell="|".join(map(re.escape, STUDY_CELLS)),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        sampling=json.dumps({**STUDY_SAMPLING, "num_samples": STUDY["cell_samples"]}, sort_keys=True),
        alpha=lambda wildcards: STUDY_CELLS[wildcards.cell]["alpha"],
        beta=lambda wildcards: STUDY_CELLS[wildcards.cell]["beta"],
        tau=config["guidance"]["tau"],
        loss=config["guidance"]["loss"],
        step_scale=config["guidance"]["step_scale"],
        beta_form=lambda wildcards: STUDY_CELLS[wildcards.cell]["form"],
        guides=guide_arguments,
        shard=0,
        device=config["device"],
    shell:
        SAMPLE_GUIDED


rule rung_fidelity:
    """One rung's table: its baseline set, its cells, the gains of β and its H′'s accuracy and ROC-AUC per t."""
    input:
        real=[features(space, "real") for space in FIG4B_SPACES],
        baseline=[features(space, "study_{rung}_baseline") for space in FIG4B_SPACES],
        cells=[features(space, f"study_{{rung}}_{cell}") for space in FIG4B_SPACES for cell in STUDY_CELLS],
        accuracy="results/fidelity_study/{rung}/discriminator/accuracy.csv",
    output:
        "results/fidelity_study/{rung}/fidelity.csv",
    log:
        "logs/fidelity_study/{rung}/fidelity.log",
    benchmark:
        "results/benchmarks/rung_fidelity/{rung}.tsv"
    wildcard_constraints:
        rung="|".join(RUNGS),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=json.dumps(
            {
                **{k: STUDY[k] for k in ("bootstrap", "level", "seed", "prd")},
                **{k: config["evaluation"][k] for k in ("precision_k", "knn_backend")},
            },
            sort_keys=True,
        ),
        step=lambda wildcards: wildcards.rung.removeprefix("step"),
        real=as_json("real", FIG4B_SPACES),
        baseline=as_json("baseline", FIG4B_SPACES),
        cells=lambda wildcards, input: json.dumps(
            {
                space: dict(zip(STUDY_CELLS, input.cells[i * len(STUDY_CELLS) : (i + 1) * len(STUDY_CELLS)]))
                for i, space in enumerate(FIG4B_SPACES)
            }
        ),
        weights=json.dumps(STUDY_CELLS, sort_keys=True),
        device=config["device"],
    shell:
        "lowdensity rung-fidelity --params {params.cfg:q} --rung {params.step} --real {params.real:q}"
        " --baseline {params.baseline:q} --cells {params.cells:q} --weights {params.weights:q}"
        " --discriminator_accuracy {input.accuracy} --out {output} --device {params.device} 2> {log}"


rule fidelity_study:
    """The study's table (results/fidelity_study.csv) and figure D2."""
    input:
        expand("results/fidelity_study/{rung}/fidelity.csv", rung=RUNGS),
    output:
        csv="results/fidelity_study.csv",
        pdf=report("paper_figures/figD2.pdf", caption="../report/figD2.rst", category="Guided sampling"),
    log:
        "logs/fidelity_study/figD2.log",
    benchmark:
        "results/benchmarks/fidelity_study/fidelity_study.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        tables=lambda wildcards, input: json.dumps(list(input)),
        extractor=DEFAULT_EXTRACTOR,
    shell:
        "lowdensity figD2 --tables {params.tables:q} --extractor {params.extractor} --out {output.pdf}"
        " --csv {output.csv} 2> {log}"
