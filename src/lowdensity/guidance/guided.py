"""α/β-guided sampling towards low-density regions (paper Eq. 4–7, Algorithm 1).

At every step with t > 1 the ancestral update becomes

    x_{t−1} = μ_θ(x_t, t) + σ_t z + α Σ_θ ∇*L_g1(x_t, y) + β Σ_θ ∇*L_g2(x_t)

with Σ_θ = σ_t² the step's variance and ∇* the per-sample L2-normalised gradient
(`normalize_per_sample`); the last step adds neither noise nor guidance. The gradients
are taken at the current x_t (as in Dhariwal & Nichol's classifier guidance; Algorithm 1
writes L(x_{t−1}) for the sample being formed). Classifier and discriminator are
called with the original chain's timestep, not the respaced index.

L_g1 (Eq. 4, maximised)  = log softmax_j(H(x, j)/τ) at j = y: high hardness in the own class.
L_g1 (appendix A.5)       = −softmax(g(f(x)))_y: minimise the classifier's probability of y.
L_g2 (Eq. 6, maximised)  = −log softmax_j(H′(x, j)/τ) at j = real: low hardness as a real image.

A guide trained on part of the chain only (`discriminator.timesteps.max` < T) is consulted
only there (`Guide.trained_at`); with the uniform law of the paper it guides every step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .classifier import REAL
from .diffusion import ModelOutput
from .gaussians import ClassGaussians
from .unet import EncoderUNet


def loss_g1_hardness(hardness: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 4 per sample: log [exp(H(x, y)/τ) / Σ_j exp(H(x, j)/τ)]."""
    return torch.log_softmax(hardness / tau, dim=1).gather(1, y[:, None]).squeeze(1)


def loss_g1_softmax(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Appendix A.5 per sample: −p(y | x) from the classifier's logits (maximised = p minimised)."""
    return -torch.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)


def loss_g2(hardness_real_synthetic: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 6 per sample: −log [exp(H′(x, real)/τ) / Σ_j exp(H′(x, j)/τ)]."""
    return -torch.log_softmax(hardness_real_synthetic / tau, dim=1)[:, REAL]


def normalize_per_sample(grad: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """u / ‖u‖₂ for each sample (Algorithm 1's Normalize)."""
    norms = grad.flatten(1).norm(dim=1).clamp_min(eps)
    return grad / norms.reshape(-1, *([1] * (grad.ndim - 1)))


@dataclass
class Guide:
    """An encoder network with its class Gaussians (classifier: C classes; discriminator: 2), and
    the end of the timesteps it was trained on (`t_max`; None: the whole chain). A guide is
    consulted only at t < t_max: beyond, its gradient is that of a function never fitted there."""

    model: EncoderUNet
    gaussians: ClassGaussians
    t_max: Optional[int] = None

    def trained_at(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t, dtype=torch.bool) if self.t_max is None else t < self.t_max


def guidance_gradient(guide: Guide, x: torch.Tensor, t: torch.Tensor, loss_fn) -> torch.Tensor:
    """∇_x of Σ_i loss_fn(embedding_i, logits_i): one forward and one backward through the guide."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        emb = guide.model.embed(x, t)
        loss = loss_fn(emb, t).sum()
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def make_cond_fn(labels: torch.Tensor, alpha: float, beta: float, tau: float, loss: str,
                 classifier: Optional[Guide], discriminator: Optional[Guide], step_scale: str = "variance"):
    """The guidance hook for one batch: returns α ∇*L_g1 + β ∇*L_g2, which the ancestral sampler
    multiplies by the step variance σ_t² and skips at the last step.

    step_scale='std' divides the hook by σ_t so that the shift is σ_t (α ∇*L_g1 + β ∇*L_g2):
    the reading of Eq. 7 in which Σ_θ is the same factor that multiplies z in Eq. 2 and 7
    (a standard deviation). A zero weight skips its network entirely."""
    if step_scale not in ("variance", "std"):
        raise ValueError(f"guidance.step_scale must be 'variance' or 'std', not {step_scale!r}")
    if loss not in ("hardness", "softmax"):
        raise ValueError(f"guidance.loss must be 'hardness' or 'softmax', not {loss!r}")
    if alpha and classifier is None:
        raise ValueError("α > 0 needs the classifier")
    if beta and discriminator is None:
        raise ValueError("β > 0 needs the discriminator")

    def l_g1(emb, t):
        if loss == "hardness":
            return loss_g1_hardness(classifier.gaussians.hardness(emb, t), labels, tau)
        return loss_g1_softmax(classifier.model.head(emb), labels)

    def l_g2(emb, t):
        return loss_g2(discriminator.gaussians.hardness(emb, t), tau)

    def guided(weight, guide, loss_fn, x, t):
        active = guide.trained_at(t)
        if not active.any():
            return 0.0
        direction = normalize_per_sample(guidance_gradient(guide, x, t, loss_fn))
        return weight * direction * active.reshape(-1, *([1] * (x.ndim - 1)))

    def cond_fn(x: torch.Tensor, t: torch.Tensor, out: ModelOutput) -> torch.Tensor:
        shift = torch.zeros_like(x)
        if alpha:
            shift = shift + guided(alpha, classifier, l_g1, x, t)
        if beta:
            shift = shift + guided(beta, discriminator, l_g2, x, t)
        if step_scale == "std":
            shift = shift * torch.exp(-0.5 * out.log_variance)
        return shift

    return cond_fn


def load_guide(model_path: str, gaussians_path: str, device: torch.device) -> Guide:
    from .classifier import load_encoder, load_gaussians

    model, state = load_encoder(model_path, device)
    law = state.get("timesteps") or {}
    return Guide(model, load_gaussians(gaussians_path), law.get("max"))


def sample_guided_shard(sampling_cfg: dict, alpha: float, beta: float, tau: float, loss: str, model_path: str,
                        classifier_paths: Optional[Sequence[str]], discriminator_paths: Optional[Sequence[str]], shard: int,
                        out_path: str, device: str = "auto", step_scale: str = "variance",
                        extra_metadata: Optional[dict] = None, keep_state_below: Optional[int] = None,
                        branch_from: Optional[str] = None) -> None:
    """One shard of α/β-guided samples (Algorithm 1); same seeds, labels and layout as the
    baseline set of `sampling_cfg`, so sample i pairs with baseline sample i. Each guide is
    (model, Gaussians) paths, needed only when its weight is non-zero.

    H′ of a discriminator trained at t < t_max is consulted only there (`Guide.trained_at`), so
    chains that differ only in β are the same computation until the first step below t_max.
    `keep_state_below` = t_max keeps this shard's states there; `branch_from` (a file that kept
    them, of the same loss, α, τ and Σ_θ) continues from them: the last few steps instead of the
    whole chain, the same samples (`sampling.sample_shard`)."""
    from .ddpm import select_device
    from .sampling import read_branch, sample_shard

    from .training import memory_format

    for weight, name, paths in ((alpha, "α", classifier_paths), (beta, "β", discriminator_paths)):
        if weight and not paths:
            raise ValueError(f"{name} = {weight} needs the {'classifier' if name == 'α' else 'discriminator'}'s model and Gaussians")
    dev = select_device(device)
    classifier = load_guide(*classifier_paths, dev) if alpha else None
    discriminator = load_guide(*discriminator_paths, dev) if beta else None
    for guide in (classifier, discriminator):
        if guide is not None:
            memory_format(guide.model, sampling_cfg.get("channels_last", False))
    metadata = {"alpha": alpha, "beta": beta, "tau": tau, "loss": loss, "step_scale": step_scale, **(extra_metadata or {})}
    branch = read_branch(branch_from) if branch_from else None
    if branch_from and branch is None:
        logging.getLogger("lowdensity").info("%s keeps no branch states: sampling the whole chain", branch_from)
    if branch is not None:
        check_branch_source(branch, branch_from, metadata, discriminator)
    sample_shard(sampling_cfg, model_path, shard, out_path, device,
                 cond_fn_for=lambda y, seeds, diffusion: make_cond_fn(y, alpha, beta, tau, loss, classifier, discriminator, step_scale),
                 metadata=metadata, keep_state_below=keep_state_below, branch=branch)


def check_branch_source(branch: dict, path: str, metadata: dict, discriminator: Optional[Guide]) -> None:
    """A chain may continue from another's kept states only if every step above them computed the
    same thing: the same loss, α, τ and Σ_θ (β may differ: H′ is consulted only below where they
    were kept, which must be where this discriminator's trained timesteps end)."""
    def same(key: str) -> bool:
        if f"meta_{key}" not in branch:
            return False
        there, here = branch[f"meta_{key}"].item(), metadata[key]
        return float(there) == float(here) if key in ("alpha", "tau") else str(there) == str(here)

    differ = [k for k in ("alpha", "tau", "loss", "step_scale") if not same(k)]
    if differ:
        values = ", ".join(f"{k} = {branch.get('meta_' + k)} there, {metadata[k]} here" for k in differ)
        raise ValueError(f"{path} was sampled with other {', '.join(differ)} ({values}): "
                         "its chains cannot be continued with these weights")
    if discriminator is not None and discriminator.t_max != int(branch["branch_below"]):
        raise ValueError(f"{path} kept its states below t = {int(branch['branch_below'])}, but the discriminator is consulted "
                         f"below t = {discriminator.t_max}: continuing from there would skip steps where β acts")
