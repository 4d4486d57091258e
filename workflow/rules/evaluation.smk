rule extract_features:
    """Features of one image set in one evaluation space, extracted once; every metric reads them."""
    input:
        unpack(feature_inputs),
    output:
        features="results/features/{extractor}/{set}.npy",
        labels="results/features/{extractor}/{set}.labels.npy",
    log:
        "logs/extract_features/{extractor}_{set}.log",
    benchmark:
        "results/benchmarks/extract_features/{extractor}_{set}.tsv"
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
        set="|".join(map(re.escape, IMAGE_SETS)),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["features"]["cpus_per_task"]
    resources:
        **stage_resources("features"),
    params:
        cfg=evaluation_keys("extractors", "num_reference"),
        classifier=lambda wildcards, input: f"--classifier {input.classifier}" if "classifier" in input.keys() else "",
        device=config["device"],
    shell:
        "lowdensity extract-features --params {params.cfg:q} --extractor {wildcards.extractor} --set_name {wildcards.set}"
        " --images {input.images} --data {input.data} {params.classifier} --out {output.features} --device {params.device} 2> {log}"


rule reference_neighbours:
    """The reference features' own nearest neighbours in one space (LOF's k-distances and lrd, the
    precision balls), searched once and read by every set's metrics."""
    input:
        features("{extractor}", "reference"),
    output:
        "results/metrics/{extractor}/reference_neighbours.npz",
    log:
        "logs/reference_neighbours/{extractor}.log",
    benchmark:
        "results/benchmarks/reference_neighbours/{extractor}.tsv"
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=evaluation_keys("lof_k", "precision_k", "knn_backend"),
        device=config["device"],
    shell:
        "lowdensity reference-neighbours --params {params.cfg:q} --reference {input} --out {output} --device {params.device} 2> {log}"


rule density_metrics:
    """Hardness, AvgkNN and LOF per image, precision and recall of the set: one set (real,
    baseline, guided, gan) in one feature space, so a target waits only for the sets it reads."""
    input:
        reference=features("{extractor}", "reference"),
        neighbours="results/metrics/{extractor}/reference_neighbours.npz",
        features=features("{extractor}", "{set}"),
    output:
        metrics="results/metrics/{extractor}/{set}.csv",
        summary="results/metrics/{extractor}/{set}_summary.csv",
    log:
        "logs/density_metrics/{extractor}_{set}.log",
    benchmark:
        "results/benchmarks/density_metrics/{extractor}_{set}.tsv"
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
        set="|".join(map(re.escape, EVALUATED_SETS + list(SWEEP_SETS))),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=evaluation_keys("knn_k", "lof_k", "precision_k", "intervals", "knn_backend"),
        device=config["device"],
    shell:
        "lowdensity density-metrics --params {params.cfg:q} --extractor {wildcards.extractor} --reference {input.reference}"
        " --neighbours {input.neighbours} --set_name {wildcards.set} --features {input.features} --metrics_csv {output.metrics}"
        " --summary_csv {output.summary} --device {params.device} 2> {log}"


rule collect_metrics:
    """Every evaluated set's metrics in one space as one table (per image) and one summary (per set)."""
    input:
        metrics=[set_metrics("{extractor}", s) for s in EVALUATED_SETS],
        summaries=[set_metrics("{extractor}", s, "_summary") for s in EVALUATED_SETS],
    output:
        metrics="results/metrics/{extractor}.csv",
        sets=report(
            "results/metrics/{extractor}_sets.csv",
            caption="../report/density_sets.rst",
            category="Density evaluation",
            subcategory="{extractor}",
        ),
    log:
        "logs/collect_metrics/{extractor}.log",
    benchmark:
        "results/benchmarks/collect_metrics/{extractor}.tsv"
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        metrics=as_json("metrics"),
        summaries=as_json("summaries"),
    shell:
        "lowdensity collect-metrics --metrics {params.metrics:q} --summaries {params.summaries:q}"
        " --metrics_csv {output.metrics} --sets_csv {output.sets} 2> {log}"


rule memorization:
    """Section 5 in the first extractor's space: NN distances, closest pairs, neighbours' labels."""
    input:
        reference=features(DEFAULT_EXTRACTOR, "reference"),
        guided=features(DEFAULT_EXTRACTOR, "guided"),
        real=features(DEFAULT_EXTRACTOR, "real"),
    output:
        summary=report("results/memorization.csv", caption="../report/memorization.rst", category="Memorization"),
        pairs="results/memorization_pairs.csv",
        neighbours="results/memorization_neighbours.csv",
    log:
        "logs/memorization.log",
    benchmark:
        "results/benchmarks/memorization/memorization.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=evaluation_keys("memorization", "knn_backend"),
        device=config["device"],
    shell:
        "lowdensity memorization --params {params.cfg:q} --reference {input.reference} --guided {input.guided}"
        " --real {input.real} --summary {output.summary} --pairs {output.pairs} --neighbours {output.neighbours}"
        " --device {params.device} 2> {log}"


rule fig7:
    """Hardness, AvgkNN and LOF distributions of real, baseline, guided (and GAN) images (first extractor)."""
    input:
        metrics=f"results/metrics/{DEFAULT_EXTRACTOR}.csv",
    output:
        pdf=report("paper_figures/fig7.pdf", caption="../report/fig7.rst", category="Density evaluation"),
        csv="results/fig7.csv",
    log:
        "logs/figures/fig7.log",
    benchmark:
        "results/benchmarks/fig7/fig7.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        metrics=as_json("metrics"),
        title="Figure 7: neighbourhood density",
    shell:
        "lowdensity fig7 --metrics {params.metrics:q} --title {params.title:q} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig17:
    """Figure 7 in every feature space: the configured extractors and the classifier embedding."""
    input:
        metrics=expand("results/metrics/{extractor}.csv", extractor=EXTRACTORS),
    output:
        pdf=report("paper_figures/fig17.pdf", caption="../report/fig17.rst", category="Density evaluation"),
        csv="results/fig17.csv",
    log:
        "logs/figures/fig17.log",
    benchmark:
        "results/benchmarks/fig17/fig17.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        metrics=as_json("metrics"),
        title="Figure 17: density in every feature space",
    shell:
        "lowdensity fig7 --metrics {params.metrics:q} --title {params.title:q} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig8:
    """The globally closest guided–training pairs."""
    input:
        pairs="results/memorization_pairs.csv",
        guided="results/samples/guided.npz",
        train="results/data/train.npz",
    output:
        pdf=report("paper_figures/fig8.pdf", caption="../report/fig8.rst", category="Memorization"),
        csv="results/fig8.csv",
    log:
        "logs/figures/fig8.log",
    benchmark:
        "results/benchmarks/fig8/fig8.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        num_reference=json.dumps(config["evaluation"]["num_reference"]),
        show=config["evaluation"]["memorization"]["show"],
    shell:
        "lowdensity fig8 --pairs {input.pairs} --guided {input.guided} --train {input.train}"
        " --num_reference {params.num_reference} --show {params.show} --out {output.pdf} --csv {output.csv} 2> {log}"


rule fig9:
    """Guided samples with their nearest real images and labels."""
    input:
        neighbours="results/memorization_neighbours.csv",
        guided="results/samples/guided.npz",
        train="results/data/train.npz",
    output:
        pdf=report("paper_figures/fig9.pdf", caption="../report/fig9.rst", category="Memorization"),
        csv="results/fig9.csv",
    log:
        "logs/figures/fig9.log",
    benchmark:
        "results/benchmarks/fig9/fig9.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        num_reference=json.dumps(config["evaluation"]["num_reference"]),
        show=config["evaluation"]["memorization"]["show"],
    shell:
        "lowdensity fig9 --neighbours {input.neighbours} --guided {input.guided} --train {input.train}"
        " --num_reference {params.num_reference} --show {params.show} --out {output.pdf} --csv {output.csv} 2> {log}"


rule table1:
    """Days to collect N images per hardness range: rejection sampling from the baseline vs guided sampling."""
    input:
        metrics=[set_metrics(config["table1"]["space"], s) for s in ("real", "baseline", "guided")],
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
    output:
        csv=report("results/table1.csv", caption="../report/table1.rst", category="Sampling cost"),
        markdown="results/table1.md",
    log:
        "logs/table1.log",
    benchmark:
        "results/benchmarks/table1/table1.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        metrics=as_json("metrics"),
        samples=lambda wildcards, input: json.dumps({"baseline": input.baseline, "guided": input.guided}),
        cfg=section("table1"),
    shell:
        "lowdensity table1 --params {params.cfg:q} --metrics {params.metrics:q} --samples {params.samples:q}"
        " --out {output.csv} --markdown {output.markdown} 2> {log}"


rule fig1:
    """Real low- and high-density images (extremes of hardness in the first extractor's space), and samples of each generator."""
    input:
        metrics=f"results/metrics/{DEFAULT_EXTRACTOR}.csv",
        real="results/data/val.npz",
        samples=[IMAGE_SETS[g] for g in GENERATORS],
    output:
        pdf=report("paper_figures/fig1.pdf", caption="../report/fig1.rst", category="Density evaluation"),
        csv="results/fig1.csv",
    log:
        "logs/figures/fig1.log",
    benchmark:
        "results/benchmarks/fig1/fig1.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        per_panel=config["evaluation"]["fig1_per_panel"],
        named=as_json("samples", GENERATORS),
    shell:
        "lowdensity fig1 --metrics {input.metrics} --real {input.real} --samples {params.named:q}"
        " --per_panel {params.per_panel} --out {output.pdf} --csv {output.csv} 2> {log}"


rule nll:
    """NLL bound (bits/dim) of the first held-out images under the diffusion model."""
    input:
        model="results/ddpm/model.pt",
        val="results/data/val.npz",
    output:
        "results/nll.csv",
    log:
        "logs/nll.log",
    benchmark:
        "results/benchmarks/nll/nll.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        cfg=section("nll"),
        device=config["device"],
    shell:
        "lowdensity nll --params {params.cfg:q} --model {input.model} --val {input.val} --out {output} --device {params.device} 2> {log}"


rule fig11:
    """NLL against hardness, AvgkNN and LOF with Spearman and Pearson coefficients (every feature space)."""
    input:
        nll="results/nll.csv",
        metrics=[set_metrics(extractor, "real") for extractor in EXTRACTORS],
    output:
        correlation=report(
            "results/nll_correlation.csv", caption="../report/nll_correlation.rst", category="Density evaluation"
        ),
        pdf=report("paper_figures/fig11.pdf", caption="../report/fig11.rst", category="Density evaluation"),
        csv="results/fig11.csv",
    log:
        "logs/figures/fig11.log",
    benchmark:
        "results/benchmarks/fig11/fig11.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    resources:
        **stage_resources("light"),
    params:
        metrics=as_json("metrics"),
    shell:
        "lowdensity fig11 --nll {input.nll} --metrics {params.metrics:q} --correlation {output.correlation}"
        " --out {output.pdf} --csv {output.csv} 2> {log}"


rule sample_ddim_baseline:
    """Baseline DDIM samples with a given number of steps (appendix A.7)."""
    input:
        "results/ddpm/model.pt",
    output:
        "results/samples/ddim/baseline_{steps}.npz",
    log:
        "logs/sample_ddim/baseline_{steps}.log",
    benchmark:
        "results/benchmarks/sample_ddim_baseline/baseline_{steps}.tsv"
    wildcard_constraints:
        steps=r"\d+",
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        sampling=ddim_sampling,
        device=config["device"],
    shell:
        "lowdensity sample --params {params.sampling:q} --model {input} --shard 0 --out {output} --device {params.device} 2> {log}"


rule sample_ddim_guided:
    """Guided DDIM samples (guidance.alpha, guidance.beta) with a given number of steps (appendix A.7)."""
    input:
        **guided_inputs(config["guidance"]["alpha"], config["guidance"]["beta"]),
    output:
        "results/samples/ddim/guided_{steps}.npz",
    log:
        "logs/sample_ddim/guided_{steps}.log",
    benchmark:
        "results/benchmarks/sample_ddim_guided/guided_{steps}.tsv"
    wildcard_constraints:
        steps=r"\d+",
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        sampling=ddim_sampling,
        alpha=config["guidance"]["alpha"],
        beta=config["guidance"]["beta"],
        tau=config["guidance"]["tau"],
        loss=config["guidance"]["loss"],
        step_scale=config["guidance"]["step_scale"],
        beta_form=config["guidance"]["beta_form"],
        guides=guide_arguments,
        shard=0,
        device=config["device"],
    shell:
        SAMPLE_GUIDED


rule figA7:
    """Precision against the number of DDIM steps, baseline and guided (first extractor's space)."""
    input:
        reference=features(DEFAULT_EXTRACTOR, "reference"),
        neighbours=f"results/metrics/{DEFAULT_EXTRACTOR}/reference_neighbours.npz",
        sets=[features(DEFAULT_EXTRACTOR, s) for s in DDIM_SETS],
    output:
        fidelity="results/figA7_fidelity.csv",
        pdf=report("paper_figures/figA7.pdf", caption="../report/figA7.rst", category="Density evaluation"),
        csv="results/figA7.csv",
    log:
        "logs/figures/figA7.log",
    benchmark:
        "results/benchmarks/figA7/figA7.tsv"
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=evaluation_keys("precision_k"),
        sets=lambda wildcards, input: json.dumps(
            {
                sampler: {steps: path for (s, steps), path in zip(DDIM_RUNS, input.sets) if s == sampler}
                for sampler in dict.fromkeys(s for s, _ in DDIM_RUNS)
            }
        ),
        device=config["device"],
    shell:
        "lowdensity figA7 --params {params.cfg:q} --reference {input.reference} --neighbours {input.neighbours}"
        " --sets {params.sets:q} --fidelity {output.fidelity} --out {output.pdf} --csv {output.csv}"
        " --device {params.device} 2> {log}"


rule fidelity:
    """FID and improved precision/recall of every generator's samples by torch-fidelity's metric
    code, from the features `extract_features` stored (reported as fid_<extractor>)."""
    input:
        reference="results/features/{extractor}/reference.npy",
        sets=expand("results/features/{{extractor}}/{set}.npy", set=GENERATORS),
    output:
        report(
            "results/metrics/{extractor}_fidelity.csv",
            caption="../report/fidelity.rst",
            category="Density evaluation",
            subcategory="{extractor}",
        ),
    log:
        "logs/fidelity/{extractor}.log",
    benchmark:
        "results/benchmarks/fidelity/{extractor}.tsv"
    wildcard_constraints:
        extractor="|".join(EXTRACTORS[:-1]),
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    params:
        cfg=evaluation_keys("precision_k"),
        named=as_json("sets", GENERATORS),
        device=config["device"],
    shell:
        "lowdensity fidelity --params {params.cfg:q} --extractor {wildcards.extractor} --reference {input.reference}"
        " --sets {params.named:q} --out {output} --device {params.device} 2> {log}"
