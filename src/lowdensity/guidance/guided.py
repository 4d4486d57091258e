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

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from lowdensity.core.diffusion import ModelOutput
from lowdensity.guidance.classifier import REAL
from lowdensity.guidance.gaussians import ClassGaussians
from lowdensity.networks.unet import EncoderUNet


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


@dataclass(frozen=True)
class GuidedCell:
    """The guidance of Algorithm 1 that one sample set is drawn with (a cell of figures 3, 4 and 10).

    Args:
        alpha: weight α of the hardness term (Eq. 5); 0 leaves the classifier out.
        beta: weight β of the real-vs-synthetic term H′ (Eq. 6); 0 leaves the discriminator out.
        loss: the α term's loss: `hardness` (Eq. 4) or `softmax` (appendix A.5's ablation).
        tau: the hinge τ of Eq. 4 and 6.
        step_scale: Σ_θ of Eq. 7: `variance` (σ_t², the paper's) or `std` (σ_t).
    """

    alpha: float
    beta: float
    loss: Literal["hardness", "softmax"]
    tau: float
    step_scale: Literal["variance", "std"] = "variance"

    def metadata(self) -> dict:
        """The entries a sample file stores about its guidance (`meta_alpha`, …)."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "tau": self.tau,
            "loss": self.loss,
            "step_scale": self.step_scale,
        }


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


def make_cond_fn(
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    tau: float,
    loss: str,
    classifier: Optional[Guide],
    discriminator: Optional[Guide],
    step_scale: str = "variance",
):
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
