"""Gaussian diffusion (Ho et al. 2020; Nichol & Dhariwal 2021): one object owns the chain.

The object holds the β schedule and everything derived from it: the forward process
q(x_t | x_0), the posterior q(x_{t-1} | x_t, x_0), the model's reverse transition
p_θ(x_{t-1} | x_t) (paper Eq. 1–2), the training losses (L_simple, and the hybrid
L_simple + λ L_vlb when the model also learns its variance), the ancestral and DDIM
samplers, and the variational bound in bits/dim.

Timesteps are 0-based as in improved-diffusion: index t here is the paper's t + 1, so
index 0 is the last denoising step (the decoder term) and index T-1 the first.

`SpacedDiffusion` respaces the chain onto a subset of steps (the paper samples 250 of
1000): β is recomputed from ᾱ on the kept steps, and the model, which was trained on
the full chain, is always called with the original timestep (`timestep_map`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from lowdensity.core.noise import NoiseSource
from lowdensity.core.respacing import space_timesteps
from lowdensity.data import NonFiniteSampleError

# ----------------------------------------------------------------------------- schedules


def linear_beta_schedule(num_steps: int) -> np.ndarray:
    """Ho et al.'s linear schedule from 1e-4 to 0.02, rescaled so any T spans the same range."""
    scale = 1000 / num_steps
    if scale * 0.02 >= 1:
        raise ValueError(
            f"the linear schedule needs more than 50 steps (β_T = {scale * 0.02:.2f} ≥ 1 for T = {num_steps})"
        )
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def cosine_alpha_bar(t: np.ndarray | float, s: float = 0.008):
    """ᾱ(t) of Nichol & Dhariwal's cosine schedule, t ∈ [0, 1] (before normalisation by ᾱ(0))."""
    return np.cos((np.asarray(t) + s) / (1 + s) * math.pi / 2) ** 2


def betas_from_alpha_bar(alpha_bar: Callable[[float], float], num_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """β_t = 1 − ᾱ(t/T)/ᾱ((t−1)/T), clipped at `max_beta` to avoid the singularity at t = T."""
    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return np.array(betas, dtype=np.float64)


def named_beta_schedule(name: str, num_steps: int) -> np.ndarray:
    if name == "linear":
        return linear_beta_schedule(num_steps)
    if name == "cosine":
        return betas_from_alpha_bar(lambda t: float(cosine_alpha_bar(t)), num_steps)
    raise ValueError(f"unknown beta schedule {name!r}; expected 'linear' or 'cosine'")


# ----------------------------------------------------------------------------- Gaussian helpers


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """The tanh approximation of Φ used by improved-diffusion's decoder (max error ~3e-4)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) of a Gaussian discretised to 256 bins on [-1, 1] (Ho et al. 2020, Eq. 13).

    `x` must hold uint8 values rescaled to [-1, 1]; the edge bins extend to ±∞.
    """
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


def mean_flat(x):
    return x.mean(dim=list(range(1, x.ndim)))


def _extract(arr: np.ndarray, t: torch.Tensor, shape) -> torch.Tensor:
    """arr[t] as a float tensor broadcastable to `shape`."""
    out = torch.from_numpy(arr).to(device=t.device)[t].float()
    return out.reshape(-1, *([1] * (len(shape) - 1)))


# ----------------------------------------------------------------------------- the chain


@dataclass
class ModelOutput:
    """The reverse transition p_θ(x_{t-1} | x_t) and what it was computed from."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_xstart: torch.Tensor
    eps: torch.Tensor


CondFn = Callable[[torch.Tensor, torch.Tensor, ModelOutput], torch.Tensor]
"""cond_fn(x_t, original_timestep, model_output) -> a shift g; the sampler adds Σ_θ g to the mean."""


class GaussianDiffusion:
    """DDPM with ε-prediction.

    variance: 'fixed_small' (σ_t² = β̃_t, the posterior variance), 'fixed_large' (σ_t² = β_t)
    or 'learned_range' (the model outputs v and σ_t² = exp(v log β_t + (1−v) log β̃_t)).
    With a learned variance the training loss is the hybrid L_simple + L_vlb/1000·T_train
    of Nichol & Dhariwal (the mean gets no gradient from L_vlb).
    """

    def __init__(self, betas: np.ndarray, variance: str = "fixed_small"):
        if variance not in ("fixed_small", "fixed_large", "learned_range"):
            raise ValueError(f"unknown variance type {variance!r}")
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D array in (0, 1)")
        self.betas = betas
        self.variance = variance
        self.num_timesteps = len(betas)

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)

        # q(x_{t-1} | x_t, x_0): β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), μ̃ = c0 x_0 + ct x_t.
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃_0 = 0: clip the log at β̃_1 so the decoder step has a finite variance.
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    # -- forward process ----------------------------------------------------------------

    def q_mean_variance(self, x_start, t):
        """Mean, variance and log-variance of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)."""
        mean = _extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
        variance = _extract(1.0 - self.alphas_cumprod, t, x_start.shape)
        log_variance = _extract(self.log_one_minus_alphas_cumprod, t, x_start.shape)
        return mean, variance, log_variance

    def q_sample(self, x_start, t, noise=None):
        """Draw x_t ~ q(x_t | x_0) in closed form: √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
        if noise is None:
            noise = torch.randn_like(x_start)
        return (
            _extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
            + _extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
        )

    def q_posterior_mean_variance(self, x_start, x_t, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = (
            _extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
            + _extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        )
        variance = _extract(self.posterior_variance, t, x_t.shape)
        log_variance = _extract(self.posterior_log_variance_clipped, t, x_t.shape)
        return mean, variance, log_variance

    def predict_xstart_from_eps(self, x_t, t, eps):
        return (
            _extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
            - _extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * eps
        )

    def predict_eps_from_xstart(self, x_t, t, pred_xstart):
        return (_extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - pred_xstart) / _extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t.shape
        )

    # -- reverse process ----------------------------------------------------------------

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """The timestep the network is called with (the original chain's; identity here)."""
        return t

    def p_mean_variance(self, model, x, t, model_kwargs=None, clip_denoised=True) -> ModelOutput:
        """p_θ(x_{t-1} | x_t): the network predicts ε (and v for a learned variance)."""
        model_kwargs = model_kwargs or {}
        out = model(x, self.model_timesteps(t), **model_kwargs)
        channels = x.shape[1]
        if self.variance == "learned_range":
            eps, v = out[:, :channels], out[:, channels:]
            min_log = _extract(self.posterior_log_variance_clipped, t, x.shape)
            max_log = _extract(np.log(self.betas), t, x.shape)
            frac = (v + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        else:
            eps = out
            if self.variance == "fixed_large":
                # Ho et al.: σ_t² = β_t, but β̃_1 at the decoder step for a better decoder NLL.
                var_arr = np.append(self.posterior_variance[1], self.betas[1:])
            else:
                var_arr = self.posterior_variance
            variance = _extract(var_arr, t, x.shape).expand_as(x)
            log_variance = _extract(np.log(np.append(self.posterior_variance[1], var_arr[1:])), t, x.shape).expand_as(x)
        pred_xstart = self.predict_xstart_from_eps(x, t, eps)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return ModelOutput(mean=mean, variance=variance, log_variance=log_variance, pred_xstart=pred_xstart, eps=eps)

    def p_sample(self, model, x, t, noise: torch.Tensor, model_kwargs=None, cond_fn: Optional[CondFn] = None):
        """One ancestral step: x_{t-1} = μ_θ + σ_t z [+ Σ_θ g] (paper Eq. 2 and 7).

        At the last step (index 0) neither noise nor the guidance shift is added
        (Algorithm 1: s = 0 when t = 1).
        """
        with torch.no_grad():
            out = self.p_mean_variance(model, x, t, model_kwargs)
        nonzero = (t != 0).float().reshape(-1, *([1] * (x.ndim - 1)))
        mean = out.mean
        if cond_fn is not None:
            shift = cond_fn(x, self.model_timesteps(t), out)
            mean = mean + nonzero * out.variance * shift
        sample = mean + nonzero * torch.exp(0.5 * out.log_variance) * noise
        return sample, out

    def ddim_sample(
        self, model, x, t, noise: torch.Tensor, eta: float = 0.0, model_kwargs=None, cond_fn: Optional[CondFn] = None
    ):
        """One DDIM step (Song et al. 2021, Eq. 12); η = 0 is deterministic.

        A guidance shift g is applied to the score, as in Dhariwal & Nichol's Algorithm 2:
        ε̂ = ε_θ − √(1 − ᾱ_t) g, then x̂_0 is recomputed from ε̂.
        """
        with torch.no_grad():
            out = self.p_mean_variance(model, x, t, model_kwargs)
        eps = out.eps
        nonzero = (t != 0).float().reshape(-1, *([1] * (x.ndim - 1)))
        if cond_fn is not None:
            shift = cond_fn(x, self.model_timesteps(t), out)
            eps = eps - nonzero * _extract(self.sqrt_one_minus_alphas_cumprod, t, x.shape) * shift
        # ε consistent with the clipped x̂_0 (as guided-diffusion), the same ops with or without guidance
        pred_xstart = self.predict_xstart_from_eps(x, t, eps).clamp(-1, 1)
        eps = self.predict_eps_from_xstart(x, t, pred_xstart)
        alpha_bar = _extract(self.alphas_cumprod, t, x.shape)
        alpha_bar_prev = _extract(self.alphas_cumprod_prev, t, x.shape)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        mean = pred_xstart * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        sample = mean + nonzero * sigma * noise
        return sample, out

    def sample_loop(
        self,
        model,
        shape,
        noise: NoiseSource,
        *,
        method: str = "ddpm",
        eta: float = 0.0,
        model_kwargs=None,
        cond_fn: Optional[CondFn] = None,
        device=None,
        progress: bool = False,
        init_scale: float = 1.0,
        skip: int = 0,
        x_init: Optional[torch.Tensor] = None,
        on_step: Optional[Callable[[int, torch.Tensor], None]] = None,
    ) -> torch.Tensor:
        """Run the reverse chain from x_T ~ N(0, I) and return x_0 in [-1, 1].

        Every random draw comes from `noise`, so a sample depends only on its own seed:
        x_T first, then one z per step (drawn also for DDIM with η = 0, to keep the
        streams of the two samplers aligned). `init_scale` γ and `skip` Δt start the chain
        from x = γ·ε at the (Δt+1)-th step (Boost-and-Skip); the skipped steps' z are still
        drawn, so every later step uses the same z as the standard chain. `x_init` starts it
        from that state instead (a chain continued where another, run to there, left off);
        `on_step(i, x)` sees the state before each step i that runs.
        """
        if method not in ("ddpm", "ddim"):
            raise ValueError(f"unknown sampling method {method!r}; expected 'ddpm' or 'ddim'")
        if not 0 <= skip < self.num_timesteps:
            raise ValueError(f"cannot skip {skip} of {self.num_timesteps} steps")
        device = device or next(model.parameters()).device
        x = noise.draw(shape[1:]).to(device)
        if x_init is not None:
            x = x_init.to(device=device, dtype=x.dtype)
        elif init_scale != 1.0:
            x = init_scale * x
        steps: Iterable[int] = range(self.num_timesteps - 1, -1, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(list(steps), desc="sampling", leave=False)
        for i in steps:
            z = noise.draw(shape[1:]).to(device)
            if i >= self.num_timesteps - skip:
                continue
            if on_step is not None:
                on_step(i, x)
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            if method == "ddpm":
                step, out = self.p_sample(model, x, t, z, model_kwargs, cond_fn)
            else:
                step, out = self.ddim_sample(model, x, t, z, eta, model_kwargs, cond_fn)
            if not bool(torch.isfinite(step).all()):  # one reduction per step; the cause only on failure
                raise NonFiniteSampleError(self._non_finite_step(i, x, out))
            x = step.detach()
        return x

    def _non_finite_step(self, i: int, x: torch.Tensor, out: ModelOutput) -> str:
        """Which tensor of step i made the chain's state NaN or infinite: its input, the network's
        output ε, or (both finite) the guidance shift g of Eq. 7."""

        def per_sample(v: torch.Tensor) -> torch.Tensor:
            return ~torch.isfinite(v.reshape(len(v), -1)).all(1)

        if per_sample(x).any():
            what, bad = "the chain's state entering the step", per_sample(x)
        elif per_sample(out.eps).any():
            what, bad = "the network's output ε", per_sample(out.eps)
        else:
            what, bad = "the guidance shift g (Eq. 7: the guides' gradient)", None
        count = f" for {int(bad.sum())} of {len(bad)} samples" if bad is not None else ""
        return (
            f"sampling step {i} of {self.num_timesteps}: {what} is NaN or infinite{count}; nothing was written. "
            "The weights or Gaussians this sampler reads are damaged or diverged: rebuild them"
        )

    # -- training -----------------------------------------------------------------------

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None) -> dict:
        """Per-sample losses: 'mse' (L_simple), 'vb' (L_vlb term, learned variance only), 'loss'."""
        model_kwargs = model_kwargs or {}
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise)
        out = model(x_t, self.model_timesteps(t), **model_kwargs)
        channels = x_start.shape[1]
        terms = {}
        if self.variance == "learned_range":
            eps, v = out[:, :channels], out[:, channels:]
            frozen = torch.cat([eps.detach(), v], dim=1)
            # L_vlb only trains the variance; rescaled as in improved-diffusion so that
            # λ = 0.001 holds for T = 1000.
            terms["vb"] = self._vb_terms_bpd(lambda *a, **k: frozen, x_start, x_t, t, clip_denoised=False)["output"]
            terms["vb"] = terms["vb"] * self.num_timesteps / 1000.0
        else:
            eps = out
        terms["mse"] = mean_flat((noise - eps) ** 2)
        terms["loss"] = terms["mse"] + terms.get("vb", 0.0)
        return terms

    # -- the variational bound ----------------------------------------------------------

    def _vb_terms_bpd(self, model, x_start, x_t, t, model_kwargs=None, clip_denoised=True) -> dict:
        """L_{t} in bits/dim: KL(q(x_{t-1}|x_t,x_0) || p_θ(x_{t-1}|x_t)) for t > 0, and the
        discretised-Gaussian decoder NLL −log p_θ(x_0 | x_1) at index 0."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(model, x_t, t, model_kwargs, clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out.mean, out.log_variance)) / math.log(2.0)
        decoder_nll = -discretized_gaussian_log_likelihood(x_start, out.mean, 0.5 * out.log_variance)
        decoder_nll = mean_flat(decoder_nll) / math.log(2.0)
        return {"output": torch.where(t == 0, decoder_nll, kl), "pred_xstart": out.pred_xstart}

    def prior_bpd(self, x_start) -> torch.Tensor:
        """L_T in bits/dim: KL(q(x_T | x_0) || N(0, I)); independent of the model."""
        t = torch.full((x_start.shape[0],), self.num_timesteps - 1, device=x_start.device, dtype=torch.long)
        mean, _, log_var = self.q_mean_variance(x_start, t)
        kl = normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(log_var))
        return mean_flat(kl) / math.log(2.0)

    @torch.no_grad()
    def calc_bpd_loop(
        self,
        model,
        x_start,
        model_kwargs=None,
        generator: Optional[torch.Generator] = None,
        terms: Optional[tuple[np.ndarray, np.ndarray]] = None,
    ) -> dict:
        """Negative log-likelihood bound in bits/dim for each image (improved-diffusion's
        `calc_bpd_loop`): the prior term, the KL terms of every step and the decoder term,
        each with one draw of x_t ~ q(x_t | x_0). `terms` = (timesteps, weights) evaluates only
        those steps, each term multiplied by its weight (`stratified_terms`: an unbiased
        estimate of the same bound); None: every step, weight 1. Returns per-image 'total_bpd',
        'prior_bpd', 'vb' and 'xstart_mse' (batch × evaluated steps, in increasing t)."""
        timesteps, weights = (
            terms if terms is not None else (np.arange(self.num_timesteps), np.ones(self.num_timesteps))
        )
        batch = x_start.shape[0]
        vb, xstart_mse = [], []
        for i in sorted((int(t) for t in timesteps), reverse=True):
            t = torch.full((batch,), i, device=x_start.device, dtype=torch.long)
            noise = torch.randn(x_start.shape, generator=generator, device="cpu").to(x_start.device)
            x_t = self.q_sample(x_start, t, noise)
            terms_t = self._vb_terms_bpd(model, x_start, x_t, t, model_kwargs, clip_denoised=True)
            vb.append(terms_t["output"])
            xstart_mse.append(mean_flat((terms_t["pred_xstart"] - x_start) ** 2))
        vb = torch.stack(vb[::-1], dim=1)
        xstart_mse = torch.stack(xstart_mse[::-1], dim=1)
        prior = self.prior_bpd(x_start)
        order = np.argsort(np.asarray(timesteps))
        weight = torch.as_tensor(np.asarray(weights, dtype=np.float64)[order], dtype=vb.dtype, device=vb.device)
        return {"total_bpd": (vb * weight).sum(dim=1) + prior, "prior_bpd": prior, "vb": vb, "xstart_mse": xstart_mse}


def stratified_terms(num_steps: int, num_terms: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The decoder step t = 0 (weight 1) and one step drawn uniformly from each of num_terms − 1
    contiguous strata of 1 … T−1, weighted by its stratum's size: Σ_s n_s L_{t_s} is an unbiased
    estimate of Σ_{t≥1} L_t (E[n_s L_{t_s}] = Σ_{t ∈ s} L_t). The strata grow geometrically with
    t (single steps first): the terms fall by orders of magnitude along the chain (on the default
    DDPM, t = 1 … 4 carry a quarter of the bound and t ≥ 200 under 2 %), so equal strata would put
    most of the variance in the first one. num_terms = T gives every step once."""
    if not 2 <= num_terms <= num_steps:
        raise ValueError(f"the bound needs between 2 and {num_steps} terms, not {num_terms}")
    edges = [1]  # num_terms − 1 strata [e_k, e_{k+1}), e_last = T
    for target in np.geomspace(1, num_steps, num_terms)[1:]:
        edges.append(max(edges[-1] + 1, int(round(target))))
    edges = np.asarray(edges, dtype=np.int64)
    steps = [0] + [int(rng.integers(low, high)) for low, high in zip(edges[:-1], edges[1:])]
    return np.asarray(steps), np.concatenate([[1], np.diff(edges)]).astype(np.float64)


# ----------------------------------------------------------------------------- respacing


class SpacedDiffusion(GaussianDiffusion):
    """The chain restricted to `use_timesteps`: β'_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} on the kept
    steps t_0 < t_1 < …, so that q(x_{t_i} | x_0) is unchanged. The network is called with
    the original timestep t_i (see `timestep_map`)."""

    def __init__(self, base_betas: np.ndarray, use_timesteps: Iterable[int], variance: str = "fixed_small"):
        self.use_timesteps = sorted(set(int(t) for t in use_timesteps))
        base_alphas_cumprod = np.cumprod(1.0 - np.asarray(base_betas, dtype=np.float64))
        if not self.use_timesteps or self.use_timesteps[-1] >= len(base_alphas_cumprod) or self.use_timesteps[0] < 0:
            raise ValueError("use_timesteps must be a non-empty subset of range(T)")
        self.original_num_steps = len(base_alphas_cumprod)
        last = 1.0
        new_betas = []
        for t in self.use_timesteps:
            new_betas.append(1 - base_alphas_cumprod[t] / last)
            last = base_alphas_cumprod[t]
        self.timestep_map = np.array(self.use_timesteps, dtype=np.int64)
        super().__init__(np.array(new_betas), variance)

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.timestep_map).to(t.device)[t]

    def branch_index(self, t_max: int) -> Optional[int]:
        """The index of the first step (the chain runs from the top index down) whose original
        timestep is below `t_max`, or None if none is: a guide consulted only at t < t_max (H′ of
        a discriminator trained there) takes no part in the steps above it."""
        below = np.flatnonzero(self.timestep_map < t_max)
        return int(below.max()) if len(below) else None


def build_diffusion(num_steps: int, schedule: str, variance: str = "fixed_small", respacing=None) -> GaussianDiffusion:
    """The training chain (respacing=None) or a respaced sampling chain.

    `respacing`: None or '' for all steps, an int / section string for `space_timesteps`,
    or 'ddimN'.
    """
    betas = named_beta_schedule(schedule, num_steps)
    if respacing in (None, "", num_steps, str(num_steps)):
        return SpacedDiffusion(betas, range(num_steps), variance)
    return SpacedDiffusion(betas, space_timesteps(num_steps, respacing), variance)
