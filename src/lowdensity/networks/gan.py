"""The GAN baseline of figures 1(b) and 7: a class-conditional GAN in the style of BigGAN
(Brock et al. 2019), scaled to the configured resolution and trained on the same prepared
data as the diffusion model.

- Generator: z is split hierarchically, one chunk for the linear map to a 4×4 grid and one per
  residual up-block. Each block's batch norms are class-conditional: gain 1 + W_γ[e(y), z_i]
  and bias W_β[e(y), z_i] from a shared class embedding e(y). Block: BN → ReLU → up ×2 →
  conv3 → BN → ReLU → conv3, skip: up ×2 → conv1. Output: BN → ReLU → conv3 → tanh.
- Discriminator with projection (Miyato & Koyama 2018): residual down-blocks (ReLU → conv3 →
  ReLU → conv3 → avg-pool; skip conv1 → avg-pool; the first without the leading ReLU; the
  last keeps its resolution), ReLU, global sum pooling, D(x, y) = ψ(h) + ⟨embed(y), h⟩.
- Optional self-attention (SAGAN) at the listed resolutions, in both networks.
- Spectral normalisation on every weight of both networks (BigGAN).
- Hinge loss: L_D = E[max(0, 1 − D(x, y))] + E[max(0, 1 + D(G(z, y), y))], L_G = −E[D(G(z, y), y)].
- Adam(β1 = 0, β2 = 0.999) with lr_G < lr_D, `d_steps` discriminator steps per generator step,
  EMA of the generator's weights; after training, the EMA generator's batch-norm statistics
  are re-estimated ("standing statistics", BigGAN-PyTorch), because the running statistics of
  the live generator do not belong to the averaged weights.
- Training is deterministic and resumable exactly like `training.train` (per-step generators,
  atomic checkpoints, a non-finite loss stops the run with the step number).
- `train.channels_last` trains both networks in the channels-last (NHWC) layout: the same
  model up to rounding, and on CPUs the faster one here (oneDNN's NHWC convolutions, batch norm
  and pooling: a default training step 0.71–0.78 s against 0.86–0.96 s on one thread). The
  U-Nets are not (their group norms are several times slower in NHWC on CPUs).

A pretrained BigGAN-deep (the paper's comparison, ImageNet) can replace the trained GAN: see
`load_pretrained_biggan`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from lowdensity.core.noise import NoiseSource
from lowdensity.io import load_weights


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−E[D(G(z))]."""
    return -fake_logits.mean()


def _sn_conv(cin, cout, kernel):
    return spectral_norm(nn.Conv2d(cin, cout, kernel, padding=kernel // 2))


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without affine parameters; gain 1 + W_γ c and bias W_β c from the condition c."""

    def __init__(self, channels: int, condition_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = spectral_norm(nn.Linear(condition_dim, channels, bias=False))
        self.bias = spectral_norm(nn.Linear(condition_dim, channels, bias=False))

    def forward(self, x, c):
        return self.norm(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN attention with spectrally normalised 1×1 convolutions and a zero-initialised gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.theta, self.phi = _sn_conv(channels, channels // 8, 1), _sn_conv(channels, channels // 8, 1)
        self.g, self.out = _sn_conv(channels, channels // 2, 1), _sn_conv(channels // 2, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)
        g = F.max_pool2d(self.g(x), 2).flatten(2)
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        return x + self.gamma * self.out((g @ attn.transpose(1, 2)).view(n, c // 2, h, w))


class GeneratorBlock(nn.Module):
    def __init__(self, cin, cout, condition_dim):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(cin, condition_dim), ConditionalBatchNorm(cout, condition_dim)
        self.conv1, self.conv2, self.skip = _sn_conv(cin, cout, 3), _sn_conv(cout, cout, 3), _sn_conv(cin, cout, 1)

    def forward(self, x, c):
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """G(z, y): 4×4 → image_size by len(channel_mult) − 1 up-blocks, channels × mult each."""

    def __init__(
        self,
        image_size: int,
        out_channels: int,
        num_classes: int,
        z_dim: int,
        channels: int,
        channel_mult: list[int],
        class_embedding_dim: int,
        attention_resolutions: list[int],
    ):
        super().__init__()
        blocks = len(channel_mult) - 1
        if image_size != 4 * 2**blocks:
            raise ValueError(
                f"gan.model.channel_mult has {len(channel_mult)} entries: {blocks} up-blocks make "
                f"{4 * 2**blocks}×{4 * 2**blocks} images, not the configured {image_size}×{image_size}"
            )
        if z_dim % (blocks + 1):
            raise ValueError(
                f"gan.model.z_dim = {z_dim} must split evenly into {blocks + 1} chunks (one per block and the input)"
            )
        self.z_dim, self.num_classes, self.chunk = z_dim, num_classes, z_dim // (blocks + 1)
        widths = [channels * m for m in channel_mult]
        self.embed = nn.Embedding(num_classes, class_embedding_dim)  # shared by all blocks (no SN: a lookup table)
        self.linear = spectral_norm(nn.Linear(self.chunk, widths[0] * 16))
        self.blocks = nn.ModuleList(
            GeneratorBlock(widths[i], widths[i + 1], class_embedding_dim + self.chunk) for i in range(blocks)
        )
        self.attention = nn.ModuleDict(
            {str(i): SelfAttention(widths[i + 1]) for i in range(blocks) if 8 * 2**i in attention_resolutions}
        )
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.out_conv = _sn_conv(widths[-1], out_channels, 3)

    def forward(self, z, y):
        chunks = z.split(self.chunk, dim=1)
        e = self.embed(y)
        h = self.linear(chunks[0]).view(len(z), -1, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([e, chunks[i + 1]], dim=1))
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))


class DiscriminatorBlock(nn.Module):
    def __init__(self, cin, cout, downsample: bool, preactivation: bool):
        super().__init__()
        self.conv1, self.conv2, self.skip = _sn_conv(cin, cout, 3), _sn_conv(cout, cout, 3), _sn_conv(cin, cout, 1)
        self.downsample, self.preactivation = downsample, preactivation

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(F.relu(x) if self.preactivation else x)))
        s = self.skip(x)
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class Discriminator(nn.Module):
    """D(x, y) = ψ(h) + ⟨embed(y), h⟩, h the sum-pooled features (projection discriminator)."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        num_classes: int,
        channels: int,
        channel_mult: list[int],
        attention_resolutions: list[int],
    ):
        super().__init__()
        widths = [in_channels] + [channels * m for m in channel_mult]
        blocks, attention, resolution = [], {}, image_size
        for i in range(len(channel_mult)):
            last = i == len(channel_mult) - 1
            blocks.append(DiscriminatorBlock(widths[i], widths[i + 1], downsample=not last, preactivation=i > 0))
            resolution //= 1 if last else 2
            if resolution in attention_resolutions and not last:
                attention[str(i)] = SelfAttention(widths[i + 1])
        self.blocks, self.attention = nn.ModuleList(blocks), nn.ModuleDict(attention)
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def forward(self, x, y):
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def build_gan(arch: dict) -> tuple[Generator, Discriminator]:
    m = arch["model"]
    g = Generator(
        arch["image_size"],
        arch["channels"],
        arch["num_classes"],
        m["z_dim"],
        m["g_channels"],
        m["g_channel_mult"],
        m["class_embedding_dim"],
        m["attention_resolutions"],
    )
    d = Discriminator(
        arch["image_size"],
        arch["channels"],
        arch["num_classes"],
        m["d_channels"],
        m["d_channel_mult"],
        m["attention_resolutions"],
    )
    return g, d


def truncated_normal(noise: NoiseSource, dim: int, truncation: float | None) -> torch.Tensor:
    """One z per sample from its own stream; with `truncation` t, entries with |z| > t are
    redrawn from the same stream until none is (the truncation trick of BigGAN)."""
    rows = []
    for g in noise.generators:
        z = torch.randn(dim, generator=g)
        if truncation is not None:
            outside = z.abs() > truncation
            while outside.any():
                z[outside] = torch.randn(int(outside.sum()), generator=g)
                outside = z.abs() > truncation
        rows.append(z)
    return torch.stack(rows)


@torch.no_grad()
def standing_statistics(generator: Generator, num_batches: int, batch_size: int, seed: int, device) -> None:
    """Re-estimate every batch norm's statistics as the plain average over `num_batches`
    batches of the generator's own activations (and run its spectral-norm power iterations)."""
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    generator.train()
    rng = torch.Generator().manual_seed(seed)
    for _ in range(num_batches):
        z = torch.randn(batch_size, generator.z_dim, generator=rng).to(device)
        y = torch.randint(generator.num_classes, (batch_size,), generator=rng).to(device)
        generator(z, y)
    for m in norms:
        m.momentum = 0.1
    generator.eval()


def load_generator(model_path: str, device) -> tuple[Generator, dict]:
    state = load_weights(model_path, map_location=device)
    generator, _ = build_gan(state["arch"])
    generator.load_state_dict(state["generator"])
    return generator.to(device).eval(), state


BIGGAN_DOWNLOAD = (
    "a pretrained BigGAN-deep is read from a local folder holding pytorch_model.bin and config.json "
    "(the huggingface pytorch-pretrained-BigGAN conversion, e.g. biggan-deep-128: "
    "https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-128-pytorch_model.bin and "
    "biggan-deep-128-config.json, renamed to pytorch_model.bin and config.json); download them on a machine "
    "with internet access, put them in {path}, and `pip install pytorch-pretrained-biggan` for the architecture"
)


def load_pretrained_biggan(path: str, device):
    """BigGAN-deep from `path`/pytorch_model.bin + config.json, loaded with weights_only=True and
    strict key matching into the `pytorch_pretrained_biggan` architecture."""
    folder = Path(path)
    missing = [f for f in ("pytorch_model.bin", "config.json") if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"gan.pretrained.path: {', '.join(missing)} missing in {folder}: " + BIGGAN_DOWNLOAD.format(path=folder)
        )
    try:
        from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    except ImportError as err:
        raise ImportError(
            "gan.pretrained.path is set but pytorch-pretrained-biggan is not installed: pip install -e '.[biggan]'"
        ) from err
    model = BigGAN(BigGANConfig.from_json_file(str(folder / "config.json")))
    model.load_state_dict(torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True))
    return model.to(device).eval()
