# One shell command for every guided sampling rule: the main set, the grid cells (with their
# branching options), the DDIM sets.
GUIDED_COMMAND = (
    "lowdensity sample-guided --params {params.sampling:q} --alpha {params.alpha} --beta {params.beta}"
    " --tau {params.tau} --loss {params.loss} --step-scale {params.step_scale} --model {input.ddpm}"
    " {params.guides} --shard {params.shard} --out {output} --device {params.device}"
)
SAMPLE_GUIDED = f"{GUIDED_COMMAND} 2> {{log}}"
SAMPLE_GUIDED_BRANCHING = f"{GUIDED_COMMAND} {{params.branching}} 2> {{log}}"  # cells and the main set


rule train_classifier:
    """The time-conditioned classifier g∘f on x_t ~ q(x_t | x_0); accuracy per t on the validation split."""
    input:
        train="results/data/train.npz",
        val="results/data/val.npz",
    output:
        model="results/classifier/model.pt",
        accuracy="results/classifier/accuracy.csv",
    params:
        cfg=section("classifier", "diffusion"),
        checkpoint="results/classifier/checkpoint.pt",
        device=config["device"],
    log:
        "logs/train_classifier.log",
    benchmark:
        "results/benchmarks/train_classifier/train_classifier.tsv",
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity train-classifier --gpus {resources.gpu} --params {params.cfg:q} --data {input.train} --val {input.val}"
        " --model {output.model} --accuracy {output.accuracy} --checkpoint {params.checkpoint}"
        " --device {params.device} 2> {log}"


rule fit_classifier_gaussians:
    """Class Gaussians of the classifier's embeddings of the training images (Eq. 3)."""
    input:
        model="results/classifier/model.pt",
        data="results/data/train.npz",
    output:
        gaussians="results/classifier/gaussians.pt",
        summary="results/classifier/gaussians.csv",
    params:
        cfg=section("gaussians", "diffusion"),
        device=config["device"],
    log:
        "logs/fit_classifier_gaussians.log",
    benchmark:
        "results/benchmarks/fit_classifier_gaussians/fit_classifier_gaussians.tsv",
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity fit-gaussians --params {params.cfg:q} --model {input.model} --data {input.data}"
        " --out {output.gaussians} --summary {output.summary} --device {params.device} 2> {log}"


rule sample_guided:
    """One shard of the main guided set (guidance.alpha, guidance.beta): the baseline's first
    guidance.num_samples seeds and labels, in the baseline's number of shards."""
    input:
        **guided_inputs(config["guidance"]["alpha"], config["guidance"]["beta"]),
    output:
        "results/samples/guided/shard_{shard}.npz",
    params:
        sampling=json.dumps({**config["sampling"], "num_samples": SET_SIZES["guided"]}, sort_keys=True),
        alpha=config["guidance"]["alpha"],
        beta=config["guidance"]["beta"],
        tau=config["guidance"]["tau"],
        loss=config["guidance"]["loss"],
        step_scale=config["guidance"]["step_scale"],
        guides=guide_arguments,
        shard=lambda wildcards: wildcards.shard,
        device=config["device"],
        branching=f"--keep-state-below {H_PRIME_BELOW}" if H_PRIME_BELOW is not None and config["guidance"]["alpha"] else "",
    wildcard_constraints:
        shard=r"\d+",
    log:
        "logs/sample_guided/{shard}.log",
    benchmark:
        "results/benchmarks/sample_guided/{shard}.tsv",
    priority: 10  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        SAMPLE_GUIDED_BRANCHING


rule sample_cell:
    """One (loss, α, β) cell of the figures' grids: the first seeds of the baseline set (as many as
    `cell_sizes` gives it), so that α = β = 0 reproduces the baseline bit for bit. A cell of the
    main guided set's loss and α, or a β ≠ 0 cell, continues those chains (or its β = 0 twin's)
    where H′ is first consulted (`branch_source`)."""
    input:
        unpack(cell_inputs),
    output:
        "results/samples/cells/{loss}_a{alpha}_b{beta}.npz",
    params:
        sampling=lambda wildcards: json.dumps({**config["sampling"], "shards": 1,
                                               "num_samples": CELL_SIZES[wildcard_cell(wildcards)]},
                                              sort_keys=True),
        alpha=lambda wildcards: wildcards.alpha,
        beta=lambda wildcards: wildcards.beta,
        tau=config["guidance"]["tau"],
        loss=lambda wildcards: wildcards.loss,
        step_scale=config["guidance"]["step_scale"],
        guides=guide_arguments,
        shard=0,
        device=config["device"],
        branching=cell_branching,
    wildcard_constraints:
        loss="hardness|softmax",
        alpha=WEIGHT_PATTERN,
        beta=WEIGHT_PATTERN,
    log:
        "logs/sample_cell/{loss}_a{alpha}_b{beta}.log",
    benchmark:
        "results/benchmarks/sample_cell/{loss}_a{alpha}_b{beta}.tsv",
    priority: 10  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        SAMPLE_GUIDED_BRANCHING


if PREFIX_CELLS:

    ruleorder: cell_from_set > sample_cell

    rule cell_from_set:
        """A cell whose sampler is a main set's (α = β = 0: the baseline; the main guided set's loss,
        α and β): that set's first samples, copied from the shards that hold them, not sampled again."""
        input:
            shards=prefix_cell_shards,
            data=SHAPE_OF_DATA,
        output:
            "results/samples/cells/{cell}.npz",
        params:
            first=lambda wildcards: CELL_SIZES[wildcards.cell],
            metadata=prefix_cell_metadata,
        wildcard_constraints:
            cell="|".join(re.escape(c) for c in PREFIX_CELLS),
        log:
            "logs/cell_from_set/{cell}.log",
        benchmark:
            "results/benchmarks/cell_from_set/{cell}.tsv",
        resources:
            **stage_resources("light"),
        conda:
            "../../envs/lowdensity.yaml"
        shell:
            "lowdensity gather --data {input.data} --out {output} --first {params.first} --metadata {params.metadata:q}"
            " {input.shards} 2> {log}"


rule score_sample_sets:
    """Hardness, classifier accuracy (tidy, per image) and precision (per set) of every sample set."""
    input:
        classifier="results/classifier/model.pt",
        gaussians="results/classifier/gaussians.pt",
        train="results/data/train.npz",
        val="results/data/val.npz",
        sets=["results/samples/baseline.npz", "results/samples/guided.npz"] + cell_paths(guidance_cells()),
    output:
        hardness="results/guidance/hardness.csv",
        precision="results/guidance/precision.csv",
    params:
        cfg=json.dumps({"precision": config["guidance"]["precision"]}),
        device=config["device"],
    log:
        "logs/score_sample_sets.log",
    benchmark:
        "results/benchmarks/score_sample_sets/score_sample_sets.tsv",
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity score-sets --params {params.cfg:q} --classifier {input.classifier} --gaussians {input.gaussians}"
        " --train {input.train} --val {input.val} --hardness-csv {output.hardness}"
        " --precision-csv {output.precision} --device {params.device} {input.sets} 2> {log}"
