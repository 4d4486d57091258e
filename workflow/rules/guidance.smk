# One shell command for every guided sampling rule: the main set, the grid cells (with their
# branching options), the DDIM sets.
GUIDED_COMMAND = (
    "lowdensity sample-guided --params {params.sampling:q} --cell.alpha {params.alpha} --cell.beta {params.beta}"
    " --cell.tau {params.tau} --cell.loss {params.loss} --cell.step_scale {params.step_scale}"
    " --cell.beta_form {params.beta_form} --model {input.ddpm}"
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
    log:
        "logs/train_classifier.log",
    benchmark:
        "results/benchmarks/train_classifier/train_classifier.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_encoder"]["cpus_per_task"]
    resources:
        **stage_resources("train_encoder"),
    params:
        cfg=section("classifier", "diffusion"),
        checkpoint="results/classifier/checkpoint.pt",
        device=config["device"],
    shell:
        "lowdensity --gpus {resources.gpu} train-classifier --params {params.cfg:q} --data {input.train} --val {input.val}"
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
    log:
        "logs/fit_classifier_gaussians.log",
    benchmark:
        "results/benchmarks/fit_classifier_gaussians/fit_classifier_gaussians.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    params:
        cfg=section("gaussians", "diffusion"),
        device=config["device"],
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
    log:
        "logs/sample_guided/{shard}.log",
    benchmark:
        "results/benchmarks/sample_guided/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    priority: 10  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        sampling=json.dumps({**config["sampling"], "num_samples": SET_SIZES["guided"]}, sort_keys=True),
        alpha=config["guidance"]["alpha"],
        beta=config["guidance"]["beta"],
        tau=config["guidance"]["tau"],
        loss=config["guidance"]["loss"],
        step_scale=config["guidance"]["step_scale"],
        beta_form=config["guidance"]["beta_form"],
        guides=guide_arguments,
        shard=lambda wildcards: wildcards.shard,
        device=config["device"],
        branching=(
            f"--keep_state_below {H_PRIME_BELOW}" if H_PRIME_BELOW is not None and config["guidance"]["alpha"] else ""
        ),
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
    log:
        "logs/sample_cell/{loss}_a{alpha}_b{beta}.log",
    benchmark:
        "results/benchmarks/sample_cell/{loss}_a{alpha}_b{beta}.tsv"
    wildcard_constraints:
        loss="hardness|softmax",
        alpha=WEIGHT_PATTERN,
        beta=WEIGHT_PATTERN,
    priority: 10  # on the critical path (data → DDPM → baseline → H′ → guided): started first
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        sampling=lambda wildcards: json.dumps(
            {**config["sampling"], "shards": 1, "num_samples": CELL_SIZES[wildcard_cell(wildcards)]}, sort_keys=True
        ),
        alpha=lambda wildcards: wildcards.alpha,
        beta=lambda wildcards: wildcards.beta,
        tau=config["guidance"]["tau"],
        loss=lambda wildcards: wildcards.loss,
        step_scale=config["guidance"]["step_scale"],
        beta_form=config["guidance"]["beta_form"],
        guides=guide_arguments,
        shard=0,
        device=config["device"],
        branching=cell_branching,
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
        log:
            "logs/cell_from_set/{cell}.log",
        benchmark:
            "results/benchmarks/cell_from_set/{cell}.tsv"
        wildcard_constraints:
            cell="|".join(re.escape(c) for c in PREFIX_CELLS),
        conda:
            "../../envs/lowdensity.yaml"
        resources:
            **stage_resources("light"),
        params:
            shards=as_json("shards"),
            first=lambda wildcards: CELL_SIZES[wildcards.cell],
            metadata=prefix_cell_metadata,
        shell:
            "lowdensity gather --data {input.data} --out {output} --first {params.first} --metadata {params.metadata:q}"
            " --shards {params.shards:q} 2> {log}"


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
    log:
        "logs/score_sample_sets.log",
    benchmark:
        "results/benchmarks/score_sample_sets/score_sample_sets.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["fit_gaussians"]["cpus_per_task"]
    resources:
        **stage_resources("fit_gaussians"),
    params:
        sets=as_json("sets"),
        cfg=json.dumps({"precision": config["guidance"]["precision"]}),
        device=config["device"],
    shell:
        "lowdensity score-sets --params {params.cfg:q} --classifier {input.classifier} --gaussians {input.gaussians}"
        " --train {input.train} --val {input.val} --hardness_csv {output.hardness}"
        " --precision_csv {output.precision} --sets {params.sets:q} --device {params.device} 2> {log}"
