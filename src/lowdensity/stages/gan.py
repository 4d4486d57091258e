"""The GAN baseline's stages: train it (resumable) and draw its sample shards, or those of a
pretrained BigGAN-deep."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lowdensity.core.noise import NoiseSource
from lowdensity.core.training import (
    NonFiniteLossError,
    array_digest,
    compute_precision,
    ema_update,
    fingerprint,
    learning_rate,
    memory_format,
    resume_state,
    step_seed,
    trajectory_config,
)
from lowdensity.data import load_split, split_info, to_model_range, to_uint8
from lowdensity.guidance.sampling import balanced_labels
from lowdensity.io import atomic_to_csv, atomic_torch_save
from lowdensity.layout import shard_indices
from lowdensity.networks.gan import (
    build_gan,
    hinge_discriminator_loss,
    hinge_generator_loss,
    load_generator,
    load_pretrained_biggan,
    standing_statistics,
    truncated_normal,
)
from lowdensity.runtime import select_device, with_precision
from lowdensity.stages.sampling import write_shard


def train_gan(*, params: dict, data: str, model: str, loss_csv: str, checkpoint: str, device: str = "auto") -> None:
    """Train the GAN on the prepared training split; write the EMA generator (with standing
    statistics) to `model` and the loss log to `loss_csv`.

    Args:
        params: {"model": ..., "train": ...} of the config's gan section.
        data: the prepared training split.
        model: the generator's weights (EMA, standing statistics).
        loss_csv: the losses per logged step.
        checkpoint: the resumable checkpoint.
        device: where to train (auto: CUDA when present).
    """
    dev = select_device(device)
    split = load_split(data)
    images = to_model_range(split.images)
    labels = torch.from_numpy(split.labels).long()
    arch = {
        "model": params["model"],
        "image_size": int(images.shape[-1]),
        "channels": int(images.shape[1]),
        "num_classes": len(split.class_names),
    }
    t = with_precision(params["train"], dev)
    torch.manual_seed(t["seed"])  # initial weights and spectral-norm vectors
    generator, discriminator = (memory_format(net.to(dev), t.get("channels_last", False)) for net in build_gan(arch))
    ema = copy.deepcopy(generator).requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=t["lr_g"], betas=(0.0, 0.999), eps=1e-6)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=t["lr_d"], betas=(0.0, 0.999), eps=1e-6)
    # everything that shapes the training trajectory (not its length unless the rates decay, nor the final
    # statistics pass)
    run = fingerprint(
        "gan",
        "real+fake in one D forward",
        params["model"],
        trajectory_config(t, ("standing_batches",)),
        array_digest(split.images, split.labels),
    )
    start, history, pending = 0, [], {}
    checkpoint = Path(checkpoint)
    state = resume_state(checkpoint, run, t["steps"], dev, "train_gan")
    if state:
        for net, key in [
            (generator, "generator"),
            (discriminator, "discriminator"),
            (ema, "ema"),
            (opt_g, "opt_g"),
            (opt_d, "opt_d"),
        ]:
            net.load_state_dict(state[key])
        start, history, pending = int(state["step"]), list(state["history"]), dict(state["pending"])

    def save(step):
        atomic_torch_save(
            {
                "fingerprint": run,
                "step": step,
                "generator": generator.state_dict(),
                "discriminator": discriminator.state_dict(),
                "ema": ema.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "history": history,
                "pending": pending,
            },
            checkpoint,
        )

    n, bs = len(images), t["batch_size"]
    generator.train()
    discriminator.train()
    for step in tqdm(range(start, t["steps"]), desc="train_gan", initial=start, total=t["steps"], mininterval=10):
        rng = torch.Generator().manual_seed(step_seed(t["seed"], step))
        for opt, base in [(opt_g, t["lr_g"]), (opt_d, t["lr_d"])]:
            for group in opt.param_groups:
                group["lr"] = learning_rate(base, step, t["steps"], 0, t.get("lr_schedule", "constant"))
        for _ in range(t["d_steps"]):
            idx = torch.randint(n, (bs,), generator=rng)
            z = torch.randn(bs, generator.z_dim, generator=rng).to(dev)
            y_fake = torch.randint(arch["num_classes"], (bs,), generator=rng).to(dev)
            with compute_precision(dev, t["precision"]):
                with torch.no_grad():
                    fake = generator(z, y_fake)
                # real and fake in one forward (D has no batch statistics): one spectral-norm power
                # iteration per D step, as BigGAN's D(G(z), x) call
                logits = discriminator(
                    torch.cat([images[idx].to(dev), fake]), torch.cat([labels[idx].to(dev), y_fake])
                ).float()
            real_logits, fake_logits = logits[:bs], logits[bs:]
            d_loss = hinge_discriminator_loss(real_logits, fake_logits)
            if not torch.isfinite(d_loss):
                raise NonFiniteLossError(
                    f"train_gan: discriminator loss is {d_loss.item()} at step "
                    f"{step}; stopping (last checkpoint: {checkpoint})"
                )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        z = torch.randn(bs, generator.z_dim, generator=rng).to(dev)
        y_fake = torch.randint(arch["num_classes"], (bs,), generator=rng).to(dev)
        discriminator.requires_grad_(False)  # the generator step needs no gradient of D's weights
        with compute_precision(dev, t["precision"]):
            fake_logits_g = discriminator(generator(z, y_fake), y_fake).float()
        g_loss = hinge_generator_loss(fake_logits_g)
        if not torch.isfinite(g_loss):
            raise NonFiniteLossError(
                f"train_gan: generator loss is {g_loss.item()} at step {step}; stopping (last checkpoint: {checkpoint})"
            )
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        ema_update(ema, generator, t["ema_decay"] if step >= t["ema_start"] else 0.0)
        for key, value in [
            ("d_loss", d_loss),
            ("g_loss", g_loss),
            ("d_real", real_logits.mean()),
            ("d_fake", fake_logits.mean()),
        ]:
            pending.setdefault(key, []).append(float(value.detach()))
        if (step + 1) % t["log_every"] == 0 or step + 1 == t["steps"]:
            history.append({"step": step + 1, **{k: float(np.mean(v)) for k, v in pending.items()}})
            pending = {}
        if (step + 1) % t["checkpoint_every"] == 0 and step + 1 < t["steps"]:
            save(step + 1)
    if start < t["steps"] or not checkpoint.exists():
        save(t["steps"])
    standing_statistics(ema, t["standing_batches"], bs, t["seed"], dev)
    atomic_torch_save(
        {
            "kind": "trained",
            "arch": arch,
            "class_names": list(split.class_names),
            "generator": ema.state_dict(),
            "precision": t["precision"],
        },
        model,
    )
    atomic_to_csv(pd.DataFrame(history), loss_csv)


def _pretrained_images(
    model, z: torch.Tensor, classes: torch.Tensor, truncation: float, size: int, channels: int
) -> torch.Tensor:
    one_hot = F.one_hot(classes, model.config.num_classes).float()
    x = model(z, one_hot, truncation).clamp(-1, 1)
    x = F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] != size else x
    return x.mean(1, keepdim=True) if channels == 1 else x


@torch.no_grad()
def sample_gan_shard(
    *,
    params: dict,
    sampling: dict,
    shard: int,
    out: str,
    model: str | None = None,
    data: str | None = None,
    device: str = "auto",
) -> None:
    """Shard `shard` of the GAN sample set: sample i has label i mod C and z from seed
    `sampling.seed + i` (truncated when gan.truncation is set), like the diffusion samplers.

    With gan.pretrained.path, BigGAN-deep draws them instead: z = t · TN(−2, 2) as its authors
    sample (t = gan.pretrained.truncation), dataset class c → ImageNet class
    gan.pretrained.imagenet_classes[c] (identity when null), images resized to the data's size.

    Args:
        params: {"truncation": ..., "pretrained": ...} of the gan section.
        sampling: the sampling section (seeds, shards, sizes).
        shard: which shard to draw.
        out: the shard's sample file.
        model: the trained generator (without gan.pretrained.path).
        data: the prepared training split (with gan.pretrained.path: class names and size).
        device: where to run (auto: CUDA when present).
    """
    dev = select_device(device)
    indices = shard_indices(sampling["num_samples"], sampling["shards"], shard)
    seeds = sampling["seed"] + indices
    pretrained = params.get("pretrained") or {}
    if pretrained.get("path"):
        class_names, size, channels = split_info(data)  # not the images: 1.28M of them at ImageNet scale
        network = load_pretrained_biggan(pretrained["path"], dev)
        mapping = pretrained.get("imagenet_classes") or list(range(len(class_names)))
        if len(mapping) != len(class_names):
            raise ValueError(
                f"gan.pretrained.imagenet_classes lists {len(mapping)} classes; the data has {len(class_names)}"
            )
        z_dim, truncation = network.config.z_dim, float(pretrained["truncation"])
        metadata = {"generator": "biggan-deep (pretrained)", "truncation": json.dumps(truncation)}

        def draw(z, y):
            return _pretrained_images(network, z, torch.as_tensor(mapping, device=dev)[y], truncation, size, channels)

        def latent(noise):
            return truncation * truncated_normal(noise, z_dim, 2.0)
    else:
        network, state = load_generator(model, dev)
        class_names, z_dim = state["class_names"], network.z_dim
        metadata = {"generator": "gan (trained)", "truncation": json.dumps(params["truncation"])}

        def draw(z, y):
            return network(z, y)

        def latent(noise):
            return truncated_normal(noise, z_dim, params["truncation"])

    labels = balanced_labels(indices, len(class_names))
    start = time.perf_counter()
    batches = []
    for s in range(0, len(indices), sampling["batch_size"]):
        noise = NoiseSource(seeds[s : s + sampling["batch_size"]])
        y = torch.from_numpy(labels[s : s + sampling["batch_size"]]).to(dev)
        batches.append(to_uint8(draw(latent(noise).to(dev), y)))
    write_shard(out, np.concatenate(batches), labels, seeds, indices, class_names, dev, start, metadata=metadata)
