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

With `beta_form: log_ratio` the β term is instead Discriminator Guidance's correction (Kim et al.,
ICML 2023): β ∇ log(D/(1 − D)) added to the score, unnormalised, where D = p(real | x_t) of H′'s
trained head, so that log(D/(1 − D)) is its logit difference. It is in score units: the ancestral
sampler scales it by σ_t² (whatever `step_scale` says of the paper's normalised terms), DDIM by
−√(1 − ᾱ_t) on ε, and it fades by itself where H′ cannot tell real from synthetic.

A guide trained on part of the chain only (`discriminator.timesteps.max` < T) is consulted
only there (`Guide.trained_at`); with the uniform law of the paper it guides every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from lowdensity.core.diffusion import ModelOutput
from lowdensity.guidance.classifier import REAL, SYNTHETIC
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


def log_ratio(logits_real_synthetic: torch.Tensor) -> torch.Tensor:
    """log(D/(1 − D)) per sample with D = softmax(logits)_real: the logit of real minus that of synthetic."""
    return logits_real_synthetic[:, REAL] - logits_real_synthetic[:, SYNTHETIC]


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
        beta_form: the β term: `paper` (Eq. 6–7, the normalised direction of L_g2) or
            `log_ratio` (Discriminator Guidance: ∇ log(D/(1 − D)) in score units).
    """

    alpha: float
    beta: float
    loss: Literal["hardness", "softmax"]
    tau: float
    step_scale: Literal["variance", "std"] = "variance"
    beta_form: Literal["paper", "log_ratio"] = "paper"

    def metadata(self) -> dict:
        """The entries a sample file stores about its guidance (`meta_alpha`, …)."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "tau": self.tau,
            "loss": self.loss,
            "step_scale": self.step_scale,
            "beta_form": self.beta_form,
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


def make_cond_fn(labels: torch.Tensor, cell: GuidedCell, classifier: Optional[Guide], discriminator: Optional[Guide]):
    """The guidance hook for one batch: returns the shift that the ancestral sampler multiplies by
    the step variance σ_t² (DDIM: by −√(1 − ᾱ_t) on ε) and skips at the last step.

    The paper's terms are α ∇*L_g1 + β ∇*L_g2 (normalised directions). step_scale='std' divides
    them by σ_t so that their shift is σ_t (α ∇*L_g1 + β ∇*L_g2): the reading of Eq. 7 in which Σ_θ
    is the same factor that multiplies z in Eq. 2 and 7 (a standard deviation). With
    beta_form='log_ratio' the β term is β ∇ log(D/(1 − D)), in score units and never rescaled.
    A zero weight skips its network entirely."""
    alpha, beta, tau, loss = cell.alpha, cell.beta, cell.tau, cell.loss
    if cell.step_scale not in ("variance", "std"):
        raise ValueError(f"guidance.step_scale must be 'variance' or 'std', not {cell.step_scale!r}")
    if loss not in ("hardness", "softmax"):
        raise ValueError(f"guidance.loss must be 'hardness' or 'softmax', not {loss!r}")
    if cell.beta_form not in ("paper", "log_ratio"):
        raise ValueError(f"guidance.beta_form must be 'paper' or 'log_ratio', not {cell.beta_form!r}")
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

    def l_ratio(emb, t):
        return log_ratio(discriminator.model.head(emb))

    def guided(weight, guide, loss_fn, x, t, normalise=True):
        active = guide.trained_at(t)
        if not active.any():
            return 0.0
        gradient = guidance_gradient(guide, x, t, loss_fn)
        direction = normalize_per_sample(gradient) if normalise else gradient
        return weight * direction * active.reshape(-1, *([1] * (x.ndim - 1)))

    def cond_fn(x: torch.Tensor, t: torch.Tensor, out: ModelOutput) -> torch.Tensor:
        shift = torch.zeros_like(x)
        if alpha:
            shift = shift + guided(alpha, classifier, l_g1, x, t)
        if beta and cell.beta_form == "paper":
            shift = shift + guided(beta, discriminator, l_g2, x, t)
        if cell.step_scale == "std":
            shift = shift * torch.exp(-0.5 * out.log_variance)
        if beta and cell.beta_form == "log_ratio":
            shift = shift + guided(beta, discriminator, l_ratio, x, t, normalise=False)
        return shift

    return cond_fn
