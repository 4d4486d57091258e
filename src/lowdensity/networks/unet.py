"""The ADM U-Net (Dhariwal & Nichol 2021) and its encoder half.

Residual blocks take the timestep (and class) embedding through adaptive group norm,
GroupNorm(h)·(1 + scale) + shift ("scale-shift norm"); self-attention sits at the
configured resolutions. `EncoderUNet` is the downsampling half plus the middle block;
the time-conditioned classifier and the real-vs-synthetic discriminator of the paper
(Section 4, "We consider the encoder from U-Net for the classifier architecture") are
built on it.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lowdensity.io import load_weights


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, shape (batch, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or fewer where the width is not a multiple of 32."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block; with `scale_shift` the embedding modulates the second norm (adaptive
    group norm, ADM), otherwise it is added to the activations (DDPM's CIFAR-10 model)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float, scale_shift: bool = True):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, (2 if scale_shift else 1) * out_channels))
        self.out_norm = group_norm(out_channels)
        self.out_layers = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        )
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + emb_out)
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention width {channels} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        attn = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = attn.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, emb=None):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class EmbedSequential(nn.Sequential):
    """A sequence of layers, each given the embedding if it takes one."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock, Downsample, Upsample)) else layer(x)
        return x


class _TimeClassEmbedding(nn.Module):
    def __init__(self, model_channels: int, num_classes: Optional[int]):
        super().__init__()
        self.model_channels = model_channels
        self.dim = 4 * model_channels
        self.mlp = nn.Sequential(nn.Linear(model_channels, self.dim), nn.SiLU(), nn.Linear(self.dim, self.dim))
        self.label_emb = nn.Embedding(num_classes, self.dim) if num_classes else None

    def forward(self, t, y=None):
        emb = self.mlp(timestep_embedding(t, self.model_channels))
        if self.label_emb is not None:
            if y is None:
                raise ValueError("this model is class-conditional: pass y")
            emb = emb + self.label_emb(y)
        return emb


def _build_encoder(
    *,
    in_channels,
    model_channels,
    channel_mult,
    num_res_blocks,
    attention_resolutions,
    image_size,
    dropout,
    num_heads,
    emb_dim,
    scale_shift,
):
    """The downsampling path; returns the blocks, the width of every skip connection and the final width/resolution."""
    blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
    skip_channels = [model_channels]
    ch, res = model_channels, image_size
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers = [ResBlock(ch, emb_dim, mult * model_channels, dropout, scale_shift)]
            ch = mult * model_channels
            if res in attention_resolutions:
                layers.append(AttentionBlock(ch, num_heads))
            blocks.append(EmbedSequential(*layers))
            skip_channels.append(ch)
        if level != len(channel_mult) - 1:
            blocks.append(EmbedSequential(Downsample(ch)))
            skip_channels.append(ch)
            res //= 2
    middle = EmbedSequential(
        ResBlock(ch, emb_dim, ch, dropout, scale_shift),
        AttentionBlock(ch, num_heads),
        ResBlock(ch, emb_dim, ch, dropout, scale_shift),
    )
    return blocks, middle, skip_channels, ch, res


def _check_resolution(image_size: int, channel_mult: Sequence[int]):
    if image_size % (2 ** (len(channel_mult) - 1)):
        raise ValueError(
            f"image size {image_size} cannot be halved {len(channel_mult) - 1} "
            f"times (channel_mult={list(channel_mult)})"
        )


class UNet(nn.Module):
    """ε-prediction U-Net; `out_channels` = 2 × in_channels when the variance is learned."""

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int] = (),
        channel_mult: Sequence[int] = (1, 2, 2),
        dropout: float = 0.0,
        num_classes: Optional[int] = None,
        num_heads: int = 1,
        scale_shift: bool = True,
    ):
        super().__init__()
        _check_resolution(image_size, channel_mult)
        self.num_classes = num_classes
        self.embed = _TimeClassEmbedding(model_channels, num_classes)
        emb_dim = self.embed.dim
        attention_resolutions = set(attention_resolutions)
        self.input_blocks, self.middle_block, skips, ch, res = _build_encoder(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_resolutions=attention_resolutions,
            image_size=image_size,
            dropout=dropout,
            num_heads=num_heads,
            emb_dim=emb_dim,
            scale_shift=scale_shift,
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), emb_dim, mult * model_channels, dropout, scale_shift)]
                ch = mult * model_channels
                if res in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    res *= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, out_channels, 3, padding=1)))

    def forward(self, x, t, y=None):
        emb = self.embed(t, y)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


class EncoderUNet(nn.Module):
    """The U-Net's encoder and middle block, time-conditioned, with a pooled embedding f(x, t).

    `embed(x, t)` returns f(x, t) ∈ R^k: GroupNorm, SiLU, global average pooling, and a
    linear projection to `embedding_dim` (k); `forward` applies the linear head g.
    """

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        model_channels: int,
        num_outputs: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int] = (),
        channel_mult: Sequence[int] = (1, 2, 2),
        dropout: float = 0.0,
        num_heads: int = 1,
        embedding_dim: int = 128,
        scale_shift: bool = True,
    ):
        super().__init__()
        _check_resolution(image_size, channel_mult)
        self.embed_t = _TimeClassEmbedding(model_channels, None)
        self.input_blocks, self.middle_block, _, ch, _ = _build_encoder(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_resolutions=set(attention_resolutions),
            image_size=image_size,
            dropout=dropout,
            num_heads=num_heads,
            emb_dim=self.embed_t.dim,
            scale_shift=scale_shift,
        )
        self.pool = nn.Sequential(
            group_norm(ch), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, embedding_dim)
        )
        self.head = nn.Linear(embedding_dim, num_outputs)
        self.embedding_dim = embedding_dim

    def embed(self, x, t):
        emb = self.embed_t(t)
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
        return self.pool(self.middle_block(h, emb))

    def forward(self, x, t):
        return self.head(self.embed(x, t))


class FrozenEncoderHead(nn.Module):
    """A two-class network as Discriminator Guidance builds its discriminator (Kim et al. 2023): a
    frozen, already trained time-conditioned encoder (the classifier's f(x, t)) and a small head
    trained on its embedding, conditioned on t as well:

        h₁ = SiLU(W₁ f(x, t) + a₁(t)),  h₂ = SiLU(W₂ h₁ + a₂(t)),  embed(x, t) = W₃ h₂ ∈ R^k,

    with a_i(t) linear maps of the sinusoidal embedding of t, dropout after each h, and the linear
    head g on embed(x, t), as `EncoderUNet`'s. DG's head is a small U-Net encoder over ADM's last
    feature map; here the head reads the classifier's pooled embedding, the features the paper's
    Gaussians (Eq. 3) are fitted on. The encoder stays frozen and in eval mode; gradients still
    flow through it to x, which guidance needs.
    """

    def __init__(
        self,
        *,
        encoder: dict,
        width: int,
        embedding_dim: int,
        num_outputs: int,
        dropout: float = 0.0,
        time_dim: int = 64,
    ):
        super().__init__()
        encoder = {**encoder, **{k: tuple(encoder[k]) for k in ("attention_resolutions", "channel_mult")}}
        self.encoder = EncoderUNet(**encoder).requires_grad_(False)
        self.time_dim = time_dim
        self.layers = nn.ModuleList([nn.Linear(self.encoder.embedding_dim, width), nn.Linear(width, width)])
        self.time_shifts = nn.ModuleList([nn.Linear(time_dim, width), nn.Linear(time_dim, width)])
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(width, embedding_dim)
        self.head = nn.Linear(embedding_dim, num_outputs)
        self.embedding_dim = embedding_dim

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: its dropout stays off while the head trains
        return self

    def embed(self, x, t):
        h = self.encoder.embed(x, t)
        t_emb = timestep_embedding(t, self.time_dim)
        for layer, shift in zip(self.layers, self.time_shifts):
            h = self.dropout(F.silu(layer(h) + shift(t_emb)))
        return self.project(h)

    def forward(self, x, t):
        return self.head(self.embed(x, t))


def network_from_state(state: dict, network_class: type[nn.Module], device: torch.device) -> nn.Module:
    """The network of a weights file's contents (its `arch`, the constructor's arguments, and its
    `state_dict`): frozen, in eval mode, on `device`."""
    arch = dict(state["arch"])
    for key in ("attention_resolutions", "channel_mult"):
        if key in arch:
            arch[key] = tuple(arch[key])
    model = network_class(**arch)
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval().requires_grad_(False)


def load_network(path, network_class: type[nn.Module], device: torch.device) -> tuple[nn.Module, dict]:
    """A trained network from a file holding its `arch` (constructor arguments) and
    `state_dict`: frozen, in eval mode, on `device`; also returns the file's contents."""
    state = load_weights(path)
    return network_from_state(state, network_class, device), state


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
