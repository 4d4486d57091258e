rule extract_features:
    """Features of one image set in one evaluation space, extracted once; every metric reads them."""
    input:
        unpack(feature_inputs),
    output:
        features="results/features/{extractor}/{set}.npy",
        labels="results/features/{extractor}/{set}.labels.npy",
    params:
        cfg=evaluation_keys("extractors", "num_reference"),
        classifier=lambda wildcards, input: f"--classifier {input.classifier}" if "classifier" in input.keys() else "",
        device=config["device"],
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
        set="|".join(map(re.escape, IMAGE_SETS)),
    log:
        "logs/extract_features/{extractor}_{set}.log",
    benchmark:
        "results/benchmarks/extract_features/{extractor}_{set}.tsv",
    threads: config["resources"]["features"]["cpus_per_task"]
    resources:
        **stage_resources("features"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity extract-features --params {params.cfg:q} --extractor {wildcards.extractor} --set {wildcards.set}"
        " --images {input.images} --data {input.data} {params.classifier} --out {output.features} --device {params.device} 2> {log}"


rule reference_neighbours:
    """The reference features' own nearest neighbours in one space (LOF's k-distances and lrd, the
    precision balls), searched once and read by every set's metrics."""
    input:
        features("{extractor}", "reference"),
    output:
        "results/metrics/{extractor}/reference_neighbours.npz",
    params:
        cfg=evaluation_keys("lof_k", "precision_k"),
        device=config["device"],
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
    log:
        "logs/reference_neighbours/{extractor}.log",
    benchmark:
        "results/benchmarks/reference_neighbours/{extractor}.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    conda:
        "../../envs/lowdensity.yaml"
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
    params:
        cfg=evaluation_keys("knn_k", "lof_k", "precision_k"),
        device=config["device"],
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
        set="|".join(map(re.escape, EVALUATED_SETS + list(SWEEP_SETS))),
    log:
        "logs/density_metrics/{extractor}_{set}.log",
    benchmark:
        "results/benchmarks/density_metrics/{extractor}_{set}.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity density-metrics --params {params.cfg:q} --extractor {wildcards.extractor} --reference {input.reference}"
        " --neighbours {input.neighbours} --set {wildcards.set} --features {input.features} --metrics-csv {output.metrics}"
        " --summary-csv {output.summary} --device {params.device} 2> {log}"


rule collect_metrics:
    """Every evaluated set's metrics in one space as one table (per image) and one summary (per set)."""
    input:
        metrics=[set_metrics("{extractor}", s) for s in EVALUATED_SETS],
        summaries=[set_metrics("{extractor}", s, "_summary") for s in EVALUATED_SETS],
    output:
        metrics="results/metrics/{extractor}.csv",
        sets=report("results/metrics/{extractor}_sets.csv", caption="../report/density_sets.rst", category="Density evaluation",
                    subcategory="{extractor}"),
    wildcard_constraints:
        extractor="|".join(EXTRACTORS),
    log:
        "logs/collect_metrics/{extractor}.log",
    benchmark:
        "results/benchmarks/collect_metrics/{extractor}.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity collect-metrics --metrics {input.metrics} --summaries {input.summaries}"
        " --metrics-csv {output.metrics} --sets-csv {output.sets} 2> {log}"


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
    params:
        cfg=evaluation_keys("memorization"),
        device=config["device"],
    log:
        "logs/memorization.log",
    benchmark:
        "results/benchmarks/memorization/memorization.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity memorization --params {params.cfg:q} --reference {input.reference} --guided {input.guided}"
        " --real {input.real} --summary {output.summary} --pairs {output.pairs} --neighbours {output.neighbours}"
        " --device {params.device} 2> {log}"


rule fig7:
    """Hardness, AvgkNN and LOF distributions of real, baseline, guided (and GAN) images (first extractor)."""
    input:
        f"results/metrics/{DEFAULT_EXTRACTOR}.csv",
    output:
        pdf=report("paper_figures/fig7.pdf", caption="../report/fig7.rst", category="Density evaluation"),
        csv="results/fig7.csv",
    params:
        cfg="{}",
    log:
        "logs/figures/fig7.log",
    benchmark:
        "results/benchmarks/fig7/fig7.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity eval-figure fig7 --params {params.cfg:q} --out {output.pdf} --csv {output.csv} {input} 2> {log}"


rule fig17:
    """Figure 7 in every feature space: the configured extractors and the classifier embedding."""
    input:
        expand("results/metrics/{extractor}.csv", extractor=EXTRACTORS),
    output:
        pdf=report("paper_figures/fig17.pdf", caption="../report/fig17.rst", category="Density evaluation"),
        csv="results/fig17.csv",
    params:
        cfg="{}",
    log:
        "logs/figures/fig17.log",
    benchmark:
        "results/benchmarks/fig17/fig17.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity eval-figure fig17 --params {params.cfg:q} --out {output.pdf} --csv {output.csv} {input} 2> {log}"


rule fig8:
    """The globally closest guided–training pairs."""
    input:
        pairs="results/memorization_pairs.csv",
        guided="results/samples/guided.npz",
        train="results/data/train.npz",
    output:
        pdf=report("paper_figures/fig8.pdf", caption="../report/fig8.rst", category="Memorization"),
        csv="results/fig8.csv",
    params:
        cfg=evaluation_keys("memorization", "num_reference"),
    log:
        "logs/figures/fig8.log",
    benchmark:
        "results/benchmarks/fig8/fig8.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity eval-figure fig8 --params {params.cfg:q} --train {input.train} --out {output.pdf} --csv {output.csv}"
        " {input.pairs} {input.guided} 2> {log}"


rule fig9:
    """Guided samples with their nearest real images and labels."""
    input:
        neighbours="results/memorization_neighbours.csv",
        guided="results/samples/guided.npz",
        train="results/data/train.npz",
    output:
        pdf=report("paper_figures/fig9.pdf", caption="../report/fig9.rst", category="Memorization"),
        csv="results/fig9.csv",
    params:
        cfg=evaluation_keys("memorization", "num_reference"),
    log:
        "logs/figures/fig9.log",
    benchmark:
        "results/benchmarks/fig9/fig9.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity eval-figure fig9 --params {params.cfg:q} --train {input.train} --out {output.pdf} --csv {output.csv}"
        " {input.neighbours} {input.guided} 2> {log}"


rule table1:
    """Days to collect N images per hardness range: rejection sampling from the baseline vs guided sampling."""
    input:
        metrics=[set_metrics(config["table1"]["space"], s) for s in ("real", "baseline", "guided")],
        baseline="results/samples/baseline.npz",
        guided="results/samples/guided.npz",
    output:
        csv=report("results/table1.csv", caption="../report/table1.rst", category="Sampling cost"),
        markdown="results/table1.md",
    params:
        cfg=section("table1"),
    log:
        "logs/table1.log",
    benchmark:
        "results/benchmarks/table1/table1.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity table1 --params {params.cfg:q} --metrics {input.metrics} --baseline {input.baseline}"
        " --guided {input.guided} --out {output.csv} --markdown {output.markdown} 2> {log}"


rule fig1:
    """Real low- and high-density images (extremes of hardness in the first extractor's space), and samples of each generator."""
    input:
        metrics=f"results/metrics/{DEFAULT_EXTRACTOR}.csv",
        real="results/data/val.npz",
        samples=[IMAGE_SETS[g] for g in GENERATORS],
    output:
        pdf=report("paper_figures/fig1.pdf", caption="../report/fig1.rst", category="Density evaluation"),
        csv="results/fig1.csv",
    params:
        cfg=evaluation_keys("fig1_per_panel"),
        named=named_inputs(GENERATORS, "samples"),
    log:
        "logs/figures/fig1.log",
    benchmark:
        "results/benchmarks/fig1/fig1.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity eval-figure fig1 --params {params.cfg:q} --out {output.pdf} --csv {output.csv}"
        " {input.metrics} {input.real} {params.named} 2> {log}"


rule nll:
    """NLL bound (bits/dim) of the first held-out images under the diffusion model."""
    input:
        model="results/ddpm/model.pt",
        val="results/data/val.npz",
    output:
        "results/nll.csv",
    params:
        cfg=section("nll"),
        device=config["device"],
    log:
        "logs/nll.log",
    benchmark:
        "results/benchmarks/nll/nll.tsv",
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity nll --params {params.cfg:q} --model {input.model} --val {input.val} --out {output} --device {params.device} 2> {log}"


rule fig11:
    """NLL against hardness, AvgkNN and LOF with Spearman and Pearson coefficients (every feature space)."""
    input:
        nll="results/nll.csv",
        metrics=[set_metrics(extractor, "real") for extractor in EXTRACTORS],
    output:
        correlation=report("results/nll_correlation.csv", caption="../report/nll_correlation.rst", category="Density evaluation"),
        pdf=report("paper_figures/fig11.pdf", caption="../report/fig11.rst", category="Density evaluation"),
        csv="results/fig11.csv",
    log:
        "logs/figures/fig11.log",
    benchmark:
        "results/benchmarks/fig11/fig11.tsv",
    resources:
        **stage_resources("light"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity nll-correlation --nll {input.nll} --out {output.correlation} --figure {output.pdf}"
        " --figure-csv {output.csv} {input.metrics} 2> {log}"


rule sample_ddim_baseline:
    """Baseline DDIM samples with a given number of steps (appendix A.7)."""
    input:
        "results/ddpm/model.pt",
    output:
        "results/samples/ddim/baseline_{steps}.npz",
    params:
        sampling=ddim_sampling,
        device=config["device"],
    wildcard_constraints:
        steps=r"\d+",
    log:
        "logs/sample_ddim/baseline_{steps}.log",
    benchmark:
        "results/benchmarks/sample_ddim_baseline/baseline_{steps}.tsv",
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity sample --params {params.sampling:q} --model {input} --shard 0 --out {output} --device {params.device} 2> {log}"


rule sample_ddim_guided:
    """Guided DDIM samples (guidance.alpha, guidance.beta) with a given number of steps (appendix A.7)."""
    input:
        **guided_inputs(config["guidance"]["alpha"], config["guidance"]["beta"]),
    output:
        "results/samples/ddim/guided_{steps}.npz",
    params:
        sampling=ddim_sampling,
        alpha=config["guidance"]["alpha"],
        beta=config["guidance"]["beta"],
        tau=config["guidance"]["tau"],
        loss=config["guidance"]["loss"],
        step_scale=config["guidance"]["step_scale"],
        guides=guide_arguments,
        shard=0,
        device=config["device"],
    wildcard_constraints:
        steps=r"\d+",
    log:
        "logs/sample_ddim/guided_{steps}.log",
    benchmark:
        "results/benchmarks/sample_ddim_guided/guided_{steps}.tsv",
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
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
    params:
        cfg=evaluation_keys("precision_k"),
        named=named_inputs([s[len("ddim_"):] for s in DDIM_SETS], "sets"),
        device=config["device"],
    log:
        "logs/figures/figA7.log",
    benchmark:
        "results/benchmarks/figA7/figA7.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity fidelity-steps --params {params.cfg:q} --reference {input.reference} --neighbours {input.neighbours}"
        " --out {output.fidelity} --figure {output.pdf} --figure-csv {output.csv} --device {params.device} {params.named} 2> {log}"


rule fidelity:
    """FID and improved precision/recall of every generator's samples by torch-fidelity's metric
    code, from the features `extract_features` stored (reported as fid_<extractor>)."""
    input:
        reference="results/features/{extractor}/reference.npy",
        sets=expand("results/features/{{extractor}}/{set}.npy", set=GENERATORS),
    output:
        report("results/metrics/{extractor}_fidelity.csv", caption="../report/fidelity.rst", category="Density evaluation",
               subcategory="{extractor}"),
    params:
        cfg=evaluation_keys("precision_k"),
        named=named_inputs(GENERATORS, "sets"),
        device=config["device"],
    wildcard_constraints:
        extractor="|".join(EXTRACTORS[:-1]),
    log:
        "logs/fidelity/{extractor}.log",
    benchmark:
        "results/benchmarks/fidelity/{extractor}.tsv",
    threads: config["resources"]["metrics"]["cpus_per_task"]
    resources:
        **stage_resources("metrics"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity fidelity --params {params.cfg:q} --extractor {wildcards.extractor} --reference {input.reference}"
        " --out {output} --device {params.device} {params.named} 2> {log}"
