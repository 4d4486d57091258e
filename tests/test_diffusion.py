"""The diffusion chain against closed forms and independent references."""

import math

import numpy as np
import pytest
import torch
from conftest import SmoothEps
from scipy import stats

from lowdensity.core.diffusion import (
    GaussianDiffusion,
    SpacedDiffusion,
    build_diffusion,
    cosine_alpha_bar,
    discretized_gaussian_log_likelihood,
    named_beta_schedule,
    normal_kl,
    stratified_terms,
)
from lowdensity.core.noise import NoiseSource
from lowdensity.core.respacing import space_timesteps


class OracleEps(torch.nn.Module):
    """Predicts the exact noise of x_t for a known x_0: ε = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t)."""

    def __init__(self, x0, base: GaussianDiffusion):
        super().__init__()
        self.x0 = x0
        self.abar = torch.from_numpy(base.alphas_cumprod).float()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, **kw):
        a = self.abar[t].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0) / (1 - a).sqrt()


class ZeroEps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, **kw):
        return torch.zeros_like(x)


def test_linear_schedule_endpoints():
    betas = named_beta_schedule("linear", 1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert np.all(np.diff(betas) > 0)


def test_cosine_schedule_matches_closed_form_alpha_bar():
    T = 1000
    betas = named_beta_schedule("cosine", T)
    abar = np.cumprod(1 - betas)
    t = np.arange(1, T + 1) / T
    expected = cosine_alpha_bar(t) / cosine_alpha_bar(0.0)
    unclipped = betas < 0.999
    np.testing.assert_allclose(abar[unclipped], expected[unclipped], rtol=1e-6, atol=1e-9)


def test_posterior_matches_bayes_rule():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): product of two Gaussians in x_{t-1}."""
    diff = build_diffusion(1000, "linear")
    betas = named_beta_schedule("linear", 1000)
    abar = np.cumprod(1 - betas)
    x0, xt = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    for step in [1, 10, 500, 999]:
        t = torch.full((5,), step)
        mean, var, _ = diff.q_posterior_mean_variance(x0, xt, t)
        prec = 1 / (1 - abar[step - 1]) + (1 - betas[step]) / betas[step]
        ref_var = 1 / prec
        ref_mean = ref_var * (
            np.sqrt(abar[step - 1]) * x0 / (1 - abar[step - 1]) + np.sqrt(1 - betas[step]) * xt / betas[step]
        )
        assert var.flatten()[0].item() == pytest.approx(ref_var, rel=1e-5)
        torch.testing.assert_close(mean, ref_mean.float(), rtol=1e-4, atol=1e-5)


def test_q_sample_moments():
    diff = build_diffusion(1000, "cosine")
    x0 = torch.full((200_000, 1, 1, 1), 0.6)
    t = torch.full((len(x0),), 300)
    torch.manual_seed(0)
    xt = diff.q_sample(x0, t)
    abar = diff.alphas_cumprod[300]
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.6, abs=5e-3)
    assert xt.var().item() == pytest.approx(1 - abar, rel=1e-2)


def test_normal_kl_matches_torch_distributions():
    m1, m2 = torch.randn(100), torch.randn(100)
    lv1, lv2 = torch.randn(100), torch.randn(100)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-5, atol=1e-6)


def test_discretized_gaussian_is_a_distribution_over_256_bins():
    bins = torch.arange(256).float() / 127.5 - 1
    for mean, log_scale in [(0.1, -2.0), (-0.9, -1.0), (0.99, -4.0)]:
        logp = discretized_gaussian_log_likelihood(bins, torch.full_like(bins, mean), torch.full_like(bins, log_scale))
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=2e-3)
        # interior bins against scipy's exact normal CDF (the tanh approximation is within 3e-4)
        sd = math.exp(log_scale)
        i = 128
        exact = stats.norm.cdf(bins[i] + 1 / 255, mean, sd) - stats.norm.cdf(bins[i] - 1 / 255, mean, sd)
        assert logp[i].exp().item() == pytest.approx(exact, abs=1e-3)


def test_prior_bpd_closed_form():
    diff = build_diffusion(1000, "linear")
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    abar = diff.alphas_cumprod[-1]
    ref = 0.5 * (abar * x0**2 + (1 - abar) - 1 - math.log(1 - abar))
    ref = ref.mean(dim=(1, 2, 3)) / math.log(2)
    torch.testing.assert_close(diff.prior_bpd(x0), ref.float(), rtol=1e-4, atol=1e-7)


def test_space_timesteps_known_values():
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(100, "10") == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert space_timesteps(10, [10]) == list(range(10))
    assert len(space_timesteps(1000, 250)) == 250


def test_respacing_keeps_marginals():
    base = named_beta_schedule("linear", 1000)
    kept = space_timesteps(1000, 50)
    spaced = SpacedDiffusion(base, kept)
    np.testing.assert_allclose(spaced.alphas_cumprod, np.cumprod(1 - base)[kept], rtol=1e-12)
    assert list(spaced.model_timesteps(torch.arange(50)).numpy()) == kept


def test_respacing_with_all_steps_equals_full_chain():
    T = 40
    betas = named_beta_schedule("linear", T)
    full = GaussianDiffusion(betas)
    spaced = SpacedDiffusion(betas, range(T))
    np.testing.assert_allclose(spaced.betas, betas, rtol=1e-10)
    model = SmoothEps()
    a = full.sample_loop(model, (3, 1, 4, 4), NoiseSource([1, 2, 3]))
    b = spaced.sample_loop(model, (3, 1, 4, 4), NoiseSource([1, 2, 3]))
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class FixedStartNoise(NoiseSource):
    """Same x_T as NoiseSource(start_seeds), per-step noise from other seeds."""

    def __init__(self, start_seeds, step_seeds):
        super().__init__(step_seeds)
        self.start = NoiseSource(start_seeds)
        self.first = True

    def draw(self, shape):
        if self.first:
            self.first = False
            return self.start.draw(shape)
        return super().draw(shape)


def test_ddim_eta_zero_is_deterministic_given_x_T():
    diff = build_diffusion(100, "linear", respacing="ddim10")
    model = SmoothEps()
    a = diff.sample_loop(model, (2, 1, 4, 4), FixedStartNoise([5, 6], [7, 8]), method="ddim", eta=0.0)
    b = diff.sample_loop(model, (2, 1, 4, 4), FixedStartNoise([5, 6], [70, 80]), method="ddim", eta=0.0)
    assert torch.equal(a, b)
    c = diff.sample_loop(model, (2, 1, 4, 4), FixedStartNoise([5, 6], [70, 80]), method="ddim", eta=1.0)
    assert not torch.equal(a, c)


def test_ddim_eta_one_step_matches_ddpm_posterior_variance():
    """With η = 1 the DDIM step has the ancestral step's variance β̃_t (Song et al. 2021)."""
    diff = build_diffusion(100, "linear")
    abar, abar_prev = diff.alphas_cumprod[40], diff.alphas_cumprod_prev[40]
    sigma2 = (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    assert sigma2 == pytest.approx(diff.posterior_variance[40], rel=1e-10)


def test_linear_schedule_rejects_too_few_steps():
    with pytest.raises(ValueError, match="more than 50 steps"):
        build_diffusion(20, "linear")


def test_vlb_terms_of_true_noise_are_smaller_than_of_zeros():
    diff = build_diffusion(60, "linear")
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (4, 1, 4, 4), generator=gen).float() / 127.5 - 1
    oracle = diff.calc_bpd_loop(OracleEps(x0, diff), x0, generator=torch.Generator().manual_seed(1))
    zeros = diff.calc_bpd_loop(ZeroEps(), x0, generator=torch.Generator().manual_seed(1))
    assert torch.all(oracle["total_bpd"] < zeros["total_bpd"])
    # The oracle recovers x_0 exactly, so each KL to the posterior vanishes (t > 0).
    assert oracle["vb"][:, 1:].abs().max().item() < 1e-4
    assert torch.all(zeros["vb"][:, 1:].sum(1) > 1.0)
    assert oracle["xstart_mse"].max().item() < 1e-8


def test_stratified_terms_cover_the_chain_and_estimate_its_sum_without_bias():
    rng = np.random.default_rng(0)
    steps, weights = stratified_terms(60, 7, rng)
    assert steps[0] == 0 and weights[0] == 1 and weights.sum() == 60  # the decoder term and six strata of 1 … 59
    edges = np.concatenate([[1], 1 + np.cumsum(weights[1:])])
    assert all(low <= t < high for t, low, high in zip(steps[1:], edges[:-1], edges[1:]))
    every, ones = stratified_terms(60, 60, rng)
    assert every.tolist() == list(range(60)) and (ones == 1).all()
    values = rng.gamma(2.0, 1.0, 60)  # any per-step terms: the weighted draw averages to their sum
    draws = [float((values[t] * w).sum()) for t, w in (stratified_terms(60, 7, rng) for _ in range(20000))]
    assert np.mean(draws) == pytest.approx(values.sum(), rel=3e-3)


def test_the_bound_from_every_stratified_term_equals_the_full_bound():
    diff = build_diffusion(60, "linear")
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    model = ZeroEps()
    full = diff.calc_bpd_loop(model, x0, generator=torch.Generator().manual_seed(2))
    terms = stratified_terms(60, 60, np.random.default_rng(0))
    same = diff.calc_bpd_loop(model, x0, generator=torch.Generator().manual_seed(2), terms=terms)
    torch.testing.assert_close(same["total_bpd"], full["total_bpd"], rtol=0, atol=0)
    few = diff.calc_bpd_loop(
        model, x0, generator=torch.Generator().manual_seed(2), terms=stratified_terms(60, 10, np.random.default_rng(0))
    )
    assert few["vb"].shape == (3, 10) and torch.isfinite(few["total_bpd"]).all()


def test_learned_range_hybrid_loss_has_vb_term():
    diff = build_diffusion(100, "linear", variance="learned_range")

    class Out(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, **kw):
            return torch.cat([torch.zeros_like(x) + self.w, torch.zeros_like(x)], 1)

    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    terms = diff.training_losses(Out(), x0, torch.tensor([0, 5, 99]))
    assert set(terms) == {"mse", "vb", "loss"}
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])


class NanAfter(torch.nn.Module):
    """ε = 0.1 x, except NaN for sample 1 from timestep `start` down."""

    def __init__(self, start: int):
        super().__init__()
        self.start = start
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, **kwargs):
        eps = 0.1 * x
        eps[1] = torch.where(t[1] <= self.start, torch.nan, eps[1])
        return eps


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_a_nan_network_output_stops_the_chain_at_its_step(method):
    from lowdensity.data import NonFiniteSampleError

    chain = GaussianDiffusion(named_beta_schedule("cosine", 20))
    with pytest.raises(
        NonFiniteSampleError,
        match=r"^sampling step 7 of 20: the network's output ε is NaN or infinite for 1 of 3 samples",
    ):
        chain.sample_loop(NanAfter(7), (3, 1, 4, 4), NoiseSource([1, 2, 3]), method=method)


def test_a_nan_guidance_shift_is_named_as_such():
    from lowdensity.data import NonFiniteSampleError

    chain = GaussianDiffusion(named_beta_schedule("cosine", 20))

    def cond_fn(x, t, out):
        return torch.where(t[:, None, None, None] == 12, torch.nan, torch.zeros_like(x))

    with pytest.raises(NonFiniteSampleError, match=r"^sampling step 12 of 20: the guidance shift g"):
        chain.sample_loop(SmoothEps(), (2, 1, 4, 4), NoiseSource([1, 2]), cond_fn=cond_fn)
