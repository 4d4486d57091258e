rule train_gan:
    """The GAN baseline (BigGAN style: spectral norm, hinge loss, conditional BN, projection
    discriminator, EMA generator). Resumes from results/gan/checkpoint.pt after an interruption."""
    input:
        "results/data/train.npz",
    output:
        model="results/gan/model.pt",
        loss="results/gan/loss.csv",
    params:
        cfg=gan_keys("model", "train"),
        checkpoint="results/gan/checkpoint.pt",
        device=config["device"],
    log:
        "logs/train_gan.log",
    benchmark:
        "results/benchmarks/train_gan/train_gan.tsv",
    priority: 45  # the longest job off the critical path: started beside the DDPM, so that it is done before the baseline's shards need every core
    threads: config["resources"]["train_gan"]["cpus_per_task"]
    resources:
        **stage_resources("train_gan"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity train-gan --params {params.cfg:q} --data {input} --model {output.model}"
        " --loss-csv {output.loss} --checkpoint {params.checkpoint} --device {params.device} 2> {log}"


rule sample_gan:
    """One shard of GAN samples: the seeds, labels and shards of the baseline (`sampling`)."""
    input:
        unpack(gan_sampling_inputs),
    output:
        "results/samples/gan/shard_{shard}.npz",
    params:
        gan=gan_keys("truncation", "pretrained"),
        sampling=section("sampling"),
        source=lambda wildcards, input: " ".join(f"--{k} {v}" for k, v in input.items()),
        device=config["device"],
    wildcard_constraints:
        shard=r"\d+",
    log:
        "logs/sample_gan/{shard}.log",
    benchmark:
        "results/benchmarks/sample_gan/{shard}.tsv",
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    conda:
        "../../envs/lowdensity.yaml"
    shell:
        "lowdensity sample-gan --params {params.gan:q} --sampling {params.sampling:q} {params.source}"
        " --shard {wildcards.shard} --out {output} --device {params.device} 2> {log}"
