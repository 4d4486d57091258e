rule train_gan:
    """The GAN baseline (BigGAN style: spectral norm, hinge loss, conditional BN, projection
    discriminator, EMA generator). Resumes from results/gan/checkpoint.pt after an interruption."""
    input:
        "results/data/train.npz",
    output:
        model="results/gan/model.pt",
        loss="results/gan/loss.csv",
    log:
        "logs/train_gan.log",
    benchmark:
        "results/benchmarks/train_gan/train_gan.tsv"
    priority: 45  # the longest job off the critical path: started beside the DDPM, so that it is done before the baseline's shards need every core
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["train_gan"]["cpus_per_task"]
    resources:
        **stage_resources("train_gan"),
    params:
        cfg=gan_keys("model", "train"),
        checkpoint="results/gan/checkpoint.pt",
        device=config["device"],
    shell:
        "lowdensity train-gan --params {params.cfg:q} --data {input} --model {output.model}"
        " --loss_csv {output.loss} --checkpoint {params.checkpoint} --device {params.device} 2> {log}"


rule sample_gan:
    """One shard of GAN samples: the seeds, labels and shards of the baseline (`sampling`)."""
    input:
        unpack(gan_sampling_inputs),
    output:
        "results/samples/gan/shard_{shard}.npz",
    log:
        "logs/sample_gan/{shard}.log",
    benchmark:
        "results/benchmarks/sample_gan/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../../envs/lowdensity.yaml"
    threads: config["resources"]["sample"]["cpus_per_task"]
    resources:
        **stage_resources("sample"),
    params:
        gan=gan_keys("truncation", "pretrained"),
        sampling=section("sampling"),
        source=lambda wildcards, input: " ".join(f"--{k} {v}" for k, v in input.items()),
        device=config["device"],
    shell:
        "lowdensity sample-gan --params {params.gan:q} --sampling {params.sampling:q} {params.source}"
        " --shard {wildcards.shard} --out {output} --device {params.device} 2> {log}"
