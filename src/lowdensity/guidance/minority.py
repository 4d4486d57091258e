"""Beyond the paper: the low-density samplers that followed it, on this pipeline's footing.

All three come from one group and reuse the trained class-conditional DDPM as it is:

- **Boost-and-Skip** (Um, Kim & Ye, ICML 2025): no guidance; the chain starts from
  x = γ·ε (γ > 1, a variance-boosted start) and the first Δt respaced steps are skipped
  (`sample_loop(init_scale=γ, skip=Δt)`). γ = 1, Δt = 0 is the baseline sampler.
- **Self-guided minority sampler** (Um & Ye, ECCV 2024): no extra network; at a guided step
  x̂₀ = Tweedie(x_t) is computed with its gradient, re-noised to the fixed time
  s = ⌊renoise_fraction·T⌋ and denoised again without gradient (x̂₀′); the loss is the
  distance d(x̂₀, x̂₀′) (high for samples the model reconstructs badly: minority features);
  its gradient, divided per sample by its largest |entry|, is added as scale·Σ_t·g (Σ_t the
  step's variance, as ADM's classifier guidance); every `every`-th step only.
- **Minority guidance** (Um, Lee & Ye, ICLR 2024): the minority score of a training image
  l(x₀) = E_ε d(x₀, x̂₀(x_t)) at the fixed time t = ⌊score_fraction·T⌋ (`minority_scores`),
  cut into L quantile classes (`minority_classes`, within each data class by default, since
  our DDPM is class-conditional), a noisy classifier p(l̃ | x_t) trained on them (the
  pipeline's encoder and trainer), and ADM's classifier guidance Σ_t·w·∇ log p(l̃ = L−1 | x_t).

The distance d (`distance`): LPIPS needs AlexNet and its linear-layer weights, which cannot be
downloaded here; the default is the squared distance in the pipeline's own classifier
embedding f(·, 0) (trained offline on the same data, differentiable, the space the paper's
hardness lives in); `l2` (pixels) and `lpips` (weights from local paths) are options.

Sample i of every sampler has the seed and label of baseline sample i and draws x_T and every
step's z from the same per-sample stream (skipped steps still draw theirs); the self-guided
sampler's re-noising draws come from a second stream per sample (seed + RENOISE_SEED_OFFSET),
so zero strength reproduces the baseline bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from lowdensity.core.diffusion import GaussianDiffusion, ModelOutput
from lowdensity.core.noise import NoiseSource
from lowdensity.data import DataMissingError, to_model_range

RENOISE_SEED_OFFSET = 2**32  # the self-guided sampler's second stream: above every sample seed (< 2^31)
SAMPLERS = ("baseline", "paper", "boost_and_skip", "self_guided", "minority_guidance")

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""d(a, b) per sample, for two batches of images in [−1, 1]; differentiable in a."""


def tweedie(chain: GaussianDiffusion, model, x_t: torch.Tensor, t: torch.Tensor, model_kwargs: dict) -> torch.Tensor:
    """x̂₀ = (x_t − √(1−ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t on the full chain (t: the original timestep)."""
    eps = model(x_t, t, **model_kwargs)[:, : x_t.shape[1]]  # a learned variance's extra channels dropped
    return chain.predict_xstart_from_eps(x_t, t, eps)


# ----------------------------------------------------------------------------- distances


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).pow(2).mean(1)


def embedding_distance(encoder) -> Distance:
    """Mean squared difference of the classifier's clean embeddings f(a, 0) and f(b, 0)."""

    def distance(a, b):
        t = torch.zeros(len(a), dtype=torch.long, device=a.device)
        return (encoder.embed(a, t) - encoder.embed(b, t)).pow(2).mean(1)

    return distance


LPIPS_DOWNLOAD = (
    "LPIPS needs two local files: AlexNet's ImageNet weights in torchvision's format "
    "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) for `alexnet`, and the LPIPS linear "
    "layers v0.1 (alex.pth from the `lpips` package, lpips/weights/v0.1/alex.pth) for `linear`; download "
    "them on a machine with internet access and set samplers.distance.lpips.alexnet / .linear to their paths"
)
LPIPS_SHIFT, LPIPS_SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
ALEXNET_TAPS = (1, 4, 7, 9, 11)  # relu1 … relu5 of torchvision's alexnet.features


class LPIPS(torch.nn.Module):
    """Zhang et al. (2018) LPIPS with AlexNet: per tapped layer, channel-normalised features,
    squared differences weighted by non-negative 1×1 linear layers, averaged over space, summed.
    Inputs in [−1, 1] are scaled as LPIPS does, grey images repeated to RGB and upsampled to
    `input_size` (AlexNet's stride-4 stem leaves nothing of 16×16)."""

    def __init__(self, alexnet_path: str, linear_path: str, input_size: int = 64):
        super().__init__()
        from torchvision.models import alexnet

        from lowdensity.io import load_weights

        missing = [
            f"{key} ({path})"
            for key, path in (("alexnet", alexnet_path), ("linear", linear_path))
            if not path or not Path(path).is_file()
        ]
        if missing:
            raise DataMissingError(f"samplers.distance.lpips: missing {', '.join(missing)}: " + LPIPS_DOWNLOAD)
        net = alexnet(weights=None)
        net.load_state_dict(load_weights(alexnet_path, map_location="cpu"))
        self.features = net.features[: ALEXNET_TAPS[-1] + 1].eval().requires_grad_(False)
        linear = load_weights(linear_path, map_location="cpu")
        for i in range(len(ALEXNET_TAPS)):
            self.register_buffer(f"lin{i}", linear[f"lin{i}.model.1.weight"].float())
        self.input_size = input_size
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).reshape(1, 3, 1, 1))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ALEXNET_TAPS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for i, (fa, fb) in enumerate(zip(self.taps(a), self.taps(b))):
            total = total + ((fa - fb).pow(2) * getattr(self, f"lin{i}")).sum(1).mean((1, 2))
        return total


def make_distance(cfg: dict, classifier_path: Optional[str], device: torch.device) -> Distance:
    """`samplers.distance`: kind classifier (the pipeline's classifier embedding), l2 or lpips."""
    kind = cfg["kind"]
    if kind == "l2":
        return l2_distance
    if kind == "classifier":
        from lowdensity.guidance.classifier import load_encoder

        encoder, _ = load_encoder(classifier_path, device)
        return embedding_distance(encoder.requires_grad_(False))
    if kind == "lpips":
        return LPIPS(cfg["lpips"]["alexnet"], cfg["lpips"]["linear"]).to(device)
    raise ValueError(f"samplers.distance.kind must be classifier, l2 or lpips, not {kind!r}")


# ----------------------------------------------------------------------------- self-guided minority sampler


def self_guided_loss(
    chain: GaussianDiffusion,
    model,
    distance: Distance,
    x_t: torch.Tensor,
    t: torch.Tensor,
    renoise_t: int,
    renoise_noise: torch.Tensor,
    model_kwargs: dict,
) -> torch.Tensor:
    """Per sample d(x̂₀(x_t), x̂₀′): x̂₀′ = Tweedie of x̂₀ re-noised to `renoise_t` (no gradient through x̂₀′)."""
    x0 = tweedie(chain, model, x_t, t, model_kwargs)
    with torch.no_grad():
        s = torch.full_like(t, renoise_t)
        x0_again = tweedie(chain, model, chain.q_sample(x0.detach(), s, renoise_noise), s, model_kwargs)
    return distance(x0, x0_again)


def normalize_by_max(grad: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """g / max|g| per sample."""
    return grad / grad.flatten(1).abs().amax(1).clamp_min(eps).reshape(-1, *([1] * (grad.ndim - 1)))


def self_guided_cond_fn(
    chain: GaussianDiffusion,
    model,
    distance: Distance,
    model_kwargs: dict,
    scale: float,
    renoise_t: int,
    guided_timesteps: set[int],
    renoise: NoiseSource,
):
    """The hook: scale · ∇_{x_t} d / max|∇| at the guided (original) timesteps, 0 elsewhere; the
    ancestral sampler multiplies it by Σ_t = σ_t²."""

    def cond_fn(x: torch.Tensor, t: torch.Tensor, out: ModelOutput) -> torch.Tensor:
        eps = renoise.draw(x.shape[1:]).to(x.device)  # drawn at every step: the stream does not depend on `every`
        if int(t[0]) not in guided_timesteps:
            return torch.zeros_like(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            loss = self_guided_loss(chain, model, distance, xg, t, renoise_t, eps, model_kwargs).sum()
            (grad,) = torch.autograd.grad(loss, xg)
        return scale * normalize_by_max(grad)

    return cond_fn


def guided_timesteps(timestep_map: np.ndarray, every: int) -> set[int]:
    """The original timesteps of every `every`-th respaced step, counted from the first step taken."""
    descending = np.asarray(timestep_map)[::-1]
    return {int(t) for t in descending[::every]}


# ----------------------------------------------------------------------------- minority guidance


@torch.no_grad()
def minority_scores(
    chain: GaussianDiffusion,
    model,
    distance: Distance,
    images: np.ndarray,
    labels: np.ndarray,
    score_t: int,
    num_draws: int,
    seed: int,
    *,
    batch_size: int = 250,
) -> np.ndarray:
    """l(x₀) = mean over `num_draws` noise draws of d(x₀, x̂₀(x_t)), x_t ~ q(x_t | x₀) at t = score_t
    (the model conditioned on the image's own label when it is class-conditional)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for start in range(0, len(images), batch_size):
        x0 = to_model_range(images[start : start + batch_size]).to(device)
        y = torch.from_numpy(np.asarray(labels[start : start + batch_size], dtype=np.int64)).to(device)
        kwargs = {"y": y} if model.num_classes else {}
        t = torch.full((len(x0),), score_t, dtype=torch.long, device=device)
        total = torch.zeros(len(x0), dtype=torch.float64, device=device)
        for _ in range(num_draws):
            noise = torch.randn(x0.shape, generator=generator).to(device)
            total += distance(x0, tweedie(chain, model, chain.q_sample(x0, t, noise), t, kwargs)).double()
        scores.append((total / num_draws).cpu())
    return torch.cat(scores).numpy() if scores else np.zeros(0)


def quantile_edges(scores: np.ndarray, num_classes: int) -> np.ndarray:
    """The L − 1 inner edges: the j/L quantiles of the scores, j = 1 … L−1."""
    return np.quantile(np.asarray(scores, dtype=np.float64), np.arange(1, num_classes) / num_classes)


def minority_classes(
    scores: np.ndarray, num_classes: int, groups: Optional[np.ndarray] = None, edges: Optional[dict] = None
) -> tuple[np.ndarray, dict]:
    """Class l ∈ {0 … L−1} of each score: the number of quantile edges at or below it (L−1: the
    most unusual). With `groups` (the data labels) the edges are each group's own quantiles.
    `edges` (group → edges) reuses the training images' edges for other images (validation)."""
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.zeros(len(scores), dtype=np.int64) if groups is None else np.asarray(groups)
    edges = (
        dict(edges)
        if edges is not None
        else {int(g): quantile_edges(scores[groups == g], num_classes) for g in np.unique(groups)}
    )
    classes = np.zeros(len(scores), dtype=np.int64)
    for g in np.unique(groups):
        members = groups == g
        classes[members] = np.searchsorted(edges[int(g)], scores[members], side="right")
    return classes, edges


def minority_guidance_cond_fn(classifier, target: int, scale: float):
    """ADM's classifier guidance towards minority class `target`: w ∇ log p(l̃ = target | x_t)
    (the ancestral sampler multiplies it by Σ_t = σ_t²)."""

    def cond_fn(x: torch.Tensor, t: torch.Tensor, out: ModelOutput) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            log_p = torch.log_softmax(classifier(xg, t), dim=1)[:, target].sum()
            (grad,) = torch.autograd.grad(log_p, xg)
        return scale * grad

    return cond_fn


# ----------------------------------------------------------------------------- sampling


# ----------------------------------------------------------------------------- Rarity score


def rarity_scores(real: np.ndarray, real_radii: np.ndarray, fake: np.ndarray, block: int = 2048) -> np.ndarray:
    """Han et al. (2022), Eq. 2: for each fake feature inside at least one real k-NN ball, the
    smallest radius among the balls that contain it; NaN for a fake inside none. Distances in
    float64. `real_radii` are each real point's distance to its k-th nearest *other* real point
    (`knn_radii`, the pipeline's stored neighbours): the published code takes column k of the
    sorted distance rows, where column 0 is the point itself at distance 0 — the same radius."""
    real64 = torch.from_numpy(np.asarray(real, dtype=np.float64))
    radii = torch.from_numpy(np.asarray(real_radii, dtype=np.float64))
    out = np.full(len(fake), np.nan)
    for start in range(0, len(fake), block):
        f = torch.from_numpy(np.asarray(fake[start : start + block], dtype=np.float64))
        best = torch.full((len(f),), np.inf, dtype=torch.float64)
        for rs in range(0, len(real64), block):
            d = torch.cdist(f, real64[rs : rs + block], compute_mode="donot_use_mm_for_euclid_dist")
            r = radii[rs : rs + block].expand_as(d)
            best = torch.minimum(best, torch.where(d <= r, r, torch.full_like(r, np.inf)).amin(1))
        best = best.numpy()
        out[start : start + len(f)] = np.where(np.isfinite(best), best, np.nan)
    return out
