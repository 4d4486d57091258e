"""Hardness, the guidance losses and Algorithm 1."""

import math

import numpy as np
import pytest
import torch
from conftest import SmoothEps
from scipy import stats
from sklearn.covariance import LedoitWolf

from lowdensity.guidance.classifier import REAL, SYNTHETIC, bucket_edges, embed_images, load_encoder
from lowdensity.guidance.gaussians import ClassGaussians
from lowdensity.guidance.guided import (
    Guide,
    GuidedCell,
    loss_g1_hardness,
    loss_g1_softmax,
    loss_g2,
    make_cond_fn,
    normalize_per_sample,
)
from lowdensity.stages.guidance import GuidePaths, sample_guided_shard
from lowdensity.stages.sampling import gather_shards, sample_shard


def random_class_data(seed=0, n=200, k=5, classes=3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(0, 3, (classes, k))
    mixing = rng.normal(0, 1, (classes, k, k))
    x = np.stack([centres[c] + mixing[c] @ rng.normal(size=k) for c in labels])
    return x, labels


def test_hardness_equals_negative_scipy_logpdf():
    x, labels = random_class_data()
    gaussians, summary = ClassGaussians.fit(x, labels, 3, shrinkage=0.0)
    queries = np.random.default_rng(1).normal(0, 3, (17, 5))
    H = gaussians.hardness(torch.from_numpy(queries).float()).numpy()
    for c in range(3):
        rows = x[labels == c]
        cov = np.cov(rows, rowvar=False, bias=True)
        ref = -stats.multivariate_normal(rows.mean(0), cov).logpdf(queries)
        np.testing.assert_allclose(H[:, c], ref, rtol=2e-4, atol=2e-3)
    assert [r["count"] for r in summary] == [67, 67, 66]


def test_ledoit_wolf_shrinkage_matches_sklearn_estimator():
    x, labels = random_class_data(n=60, k=8)
    gaussians, summary = ClassGaussians.fit(x, labels, 3, shrinkage="ledoit_wolf")
    for c in range(3):
        lw = LedoitWolf().fit(x[labels == c])
        assert summary[c]["shrinkage"] == pytest.approx(lw.shrinkage_, rel=1e-10)
        chol = gaussians.chol[0, c].double().numpy()
        np.testing.assert_allclose(chol @ chol.T, lw.covariance_, rtol=1e-4, atol=1e-5)
        assert gaussians.logdet[0, c].item() == pytest.approx(np.linalg.slogdet(lw.covariance_)[1], rel=1e-5)


def test_noise_buckets_pick_the_gaussians_of_the_timestep():
    edges = bucket_edges(1000, 4)
    assert edges.tolist() == [0, 1, 251, 500, 750, 1000]
    x, labels = random_class_data(n=300, k=3)
    buckets = np.arange(300) % 5
    x = x + 10 * buckets[:, None]  # each bucket's embeddings sit elsewhere
    gaussians, _ = ClassGaussians.fit(x, labels, 3, 0.0, buckets, edges)
    t = torch.tensor([0, 1, 250, 251, 999])
    assert gaussians.bucket_of(t).tolist() == [0, 1, 1, 2, 4]
    emb = torch.from_numpy(x[:5]).float()  # rows 0..4 are in buckets 0..4
    own = gaussians.hardness(emb, torch.tensor([0, 1, 300, 600, 900]))
    other = gaussians.hardness(emb, torch.tensor([900, 900, 0, 0, 0]))
    assert torch.all(own.min(1).values < other.min(1).values)


def test_loss_g1_hand_computed():
    H = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 4.0]])
    y = torch.tensor([1, 2])
    expected = [2 - math.log(math.exp(1) + math.exp(2) + math.exp(3)), 4 - math.log(2 * math.exp(0.5) + math.exp(4))]
    torch.testing.assert_close(loss_g1_hardness(H, y, 1.0), torch.tensor(expected))
    tau = 2.0
    expected_tau = 1.0 - math.log(math.exp(0.5) + math.exp(1.0) + math.exp(1.5))
    assert loss_g1_hardness(H[:1], torch.tensor([1]), tau).item() == pytest.approx(expected_tau, rel=1e-6)


def test_loss_g1_softmax_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert loss_g1_softmax(logits, torch.tensor([1])).item() == pytest.approx(-0.75)


def test_loss_g2_hand_computed():
    assert (SYNTHETIC, REAL) == (0, 1)
    Hp = torch.tensor([[2.0, 5.0]])  # H'(x, synthetic) = 2, H'(x, real) = 5
    expected = -(5 - math.log(math.exp(2) + math.exp(5)))
    assert loss_g2(Hp, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # maximising L_g2 lowers H'(x, real) relative to H'(x, synthetic)
    assert loss_g2(torch.tensor([[5.0, 2.0]]), 1.0).item() > loss_g2(Hp, 1.0).item()


def test_normalized_gradient_has_unit_norm_per_sample():
    g = torch.randn(4, 1, 6, 6) * torch.tensor([1e-6, 1.0, 30.0, 1e4]).reshape(-1, 1, 1, 1)
    norms = normalize_per_sample(g).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(4))


class LinearEncoder(torch.nn.Module):
    """A differentiable stand-in for EncoderUNet: f(x, t) = W vec(x)."""

    def __init__(self, k=4, d=16, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.w = torch.nn.Linear(d, k)
        self.head = torch.nn.Linear(k, classes)

    def embed(self, x, t):
        return self.w(x.flatten(1))


def test_guidance_shift_ascends_both_losses():
    enc, disc = LinearEncoder(), LinearEncoder(classes=2)
    x_emb, labels = random_class_data(n=90, k=4)
    g1, _ = ClassGaussians.fit(x_emb, labels, 3, 0.1)
    g2, _ = ClassGaussians.fit(x_emb[:60], labels[:60] % 2, 2, 0.1)
    x = torch.randn(3, 1, 4, 4)
    t = torch.tensor([5, 5, 5])
    y = torch.tensor([0, 1, 2])
    for alpha, beta, value in [
        (1.0, 0.0, lambda z: loss_g1_hardness(g1.hardness(enc.embed(z, t), t), y, 1.0)),
        (0.0, 1.0, lambda z: loss_g2(g2.hardness(disc.embed(z, t), t), 1.0)),
    ]:
        shift = make_cond_fn(y, GuidedCell(alpha, beta, "hardness", 1.0), Guide(enc, g1), Guide(disc, g2))(x, t, None)
        torch.testing.assert_close(shift.flatten(1).norm(dim=1), torch.ones(3))
        with torch.no_grad():
            assert torch.all(value(x + 1e-3 * shift) > value(x))


# --------------------------------------------------------------------------- with trained networks


SAMPLING = {"num_samples": 24, "shards": 1, "batch_size": 12, "steps": 20, "method": "ddpm", "eta": 0.0, "seed": 7}


def guided(root, name, alpha, beta=0.0, loss="hardness", step_scale="variance", **sampling):
    out = root / f"{name}.npz"
    paths = GuidePaths(str(root / "clf.pt"), str(root / "gaussians.pt"))
    sample_guided_shard(
        params={**SAMPLING, **sampling},
        cell=GuidedCell(alpha=alpha, beta=beta, loss=loss, tau=1.0, step_scale=step_scale),
        model=str(root / "ddpm.pt"),
        classifier=paths,
        discriminator=paths,
        shard=0,
        out=str(out),
        device="cpu",
    )
    return dict(np.load(out))


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_zero_weights_reproduce_the_baseline_bit_for_bit(trained, method):
    sample_shard(
        {**SAMPLING, "method": method}, str(trained / "ddpm.pt"), 0, str(trained / f"base_{method}.npz"), "cpu"
    )
    base = np.load(trained / f"base_{method}.npz")
    zero = guided(trained, f"zero_{method}", 0.0, 0.0, method=method)
    np.testing.assert_array_equal(base["images"], zero["images"])
    np.testing.assert_array_equal(base["seeds"], zero["seeds"])
    moved = guided(trained, f"moved_{method}", 2.0, 0.0, method=method)
    assert not np.array_equal(base["images"], moved["images"])


@pytest.mark.parametrize("alpha, beta", [(0.0, 0.0), (1.0, 0.5)])
def test_a_cell_sampled_alone_is_the_prefix_of_the_sharded_set(trained, tmp_path, alpha, beta):
    """Why the workflow copies a cell whose sampler is a main set's (cell_from_set) instead of
    sampling it: sample i's seed and label do not depend on the set's size, shards or batches, so
    10 samples drawn alone are the first 10 of a 24-sample set drawn in 2 shards of other batches."""
    cell = guided(trained, f"cell_{alpha}_{beta}", alpha, beta, num_samples=10, batch_size=4)
    paths = GuidePaths(str(trained / "clf.pt"), str(trained / "gaussians.pt"))
    shards = [str(tmp_path / f"shard_{s}.npz") for s in range(2)]
    for s, out in enumerate(shards):
        sample_guided_shard(
            params={**SAMPLING, "shards": 2, "batch_size": 5},
            cell=GuidedCell(alpha=alpha, beta=beta, loss="hardness", tau=1.0, step_scale="variance"),
            model=str(trained / "ddpm.pt"),
            classifier=paths,
            discriminator=paths,
            shard=s,
            out=out,
            device="cpu",
        )
    gather_shards(shards[:1], str(tmp_path / "prefix.npz"), first=10, metadata={"alpha": alpha, "beta": beta})
    prefix = np.load(tmp_path / "prefix.npz")
    for key in ("images", "labels", "seeds", "indices"):
        np.testing.assert_array_equal(prefix[key], cell[key])
    assert float(prefix["meta_alpha"]) == alpha and float(prefix["meta_beta"]) == beta
    with pytest.raises(ValueError, match="not the first 13"):
        gather_shards(shards[:1], str(tmp_path / "short.npz"), first=13)


def discriminator_below(root, t_max):
    """The tiny classifier saved as a discriminator trained at t < t_max (its checkpoint's time law)."""
    path = root / f"disc_below_{t_max}.pt"
    if not path.exists():
        state = torch.load(root / "clf.pt", weights_only=True)
        state["timesteps"] = {"max": t_max, "power": 1.0}
        torch.save(state, path)
    return GuidePaths(str(path), str(root / "gaussians.pt"))


def test_a_cell_continued_from_its_beta_zero_twin_is_the_cell_sampled_whole(trained, tmp_path):
    """H′ trained at t < 30 is consulted only there, so an (α, β) chain is the (α, 0) chain until its
    first step below t = 30: continuing the kept states of 12 chains gives, bit for bit, what sampling
    the whole chains gives (here for the first 5, in other batches), and β does act in those steps."""
    ddpm, clf, disc = (
        str(trained / "ddpm.pt"),
        GuidePaths(str(trained / "clf.pt"), str(trained / "gaussians.pt")),
        discriminator_below(trained, 30),
    )
    source = tmp_path / "a1_b0.npz"
    sample_guided_shard(
        params={**SAMPLING, "num_samples": 12},
        cell=GuidedCell(alpha=1.0, beta=0.0, loss="hardness", tau=1.0, step_scale="variance"),
        model=ddpm,
        classifier=clf,
        discriminator=None,
        shard=0,
        out=str(source),
        device="cpu",
        keep_state_below=30,
    )
    kept = np.load(source)
    assert (
        kept["branch_state"].shape == (12, 1, 8, 8)
        and int(kept["branch_timestep"]) < 30
        and int(kept["branch_below"]) == 30
    )
    np.testing.assert_array_equal(kept["images"], guided(trained, "a1_b0", 1.0, 0.0, num_samples=12)["images"])
    for n, batch_size in ((12, 12), (5, 4)):
        cfg = {**SAMPLING, "num_samples": n, "batch_size": batch_size}
        whole, continued = tmp_path / f"whole_{n}.npz", tmp_path / f"continued_{n}.npz"
        sample_guided_shard(
            params=cfg,
            cell=GuidedCell(alpha=1.0, beta=40.0, loss="hardness", tau=1.0, step_scale="variance"),
            model=ddpm,
            classifier=clf,
            discriminator=disc,
            shard=0,
            out=str(whole),
            device="cpu",
        )
        sample_guided_shard(
            params=cfg,
            cell=GuidedCell(alpha=1.0, beta=40.0, loss="hardness", tau=1.0, step_scale="variance"),
            model=ddpm,
            classifier=clf,
            discriminator=disc,
            shard=0,
            out=str(continued),
            device="cpu",
            branch_from=str(source),
        )
        whole, continued = np.load(whole), np.load(continued)
        for key in ("images", "labels", "seeds", "indices"):
            np.testing.assert_array_equal(continued[key], whole[key])
        assert not np.array_equal(whole["images"], kept["images"][:n])  # β moved the samples in the steps continued
    with pytest.raises(ValueError, match="other alpha"):
        sample_guided_shard(
            params=SAMPLING,
            cell=GuidedCell(alpha=2.0, beta=40.0, loss="hardness", tau=1.0, step_scale="variance"),
            model=ddpm,
            classifier=clf,
            discriminator=disc,
            shard=0,
            out=str(tmp_path / "x.npz"),
            device="cpu",
            branch_from=str(source),
        )
    with pytest.raises(ValueError, match="consulted below t = 50"):
        sample_guided_shard(
            params=SAMPLING,
            cell=GuidedCell(alpha=1.0, beta=40.0, loss="hardness", tau=1.0, step_scale="variance"),
            model=ddpm,
            classifier=clf,
            discriminator=discriminator_below(trained, 50),
            shard=0,
            out=str(tmp_path / "x.npz"),
            device="cpu",
            branch_from=str(source),
        )
    with pytest.raises(ValueError, match="no state for samples"):
        sample_guided_shard(
            params={**SAMPLING, "num_samples": 24},
            cell=GuidedCell(alpha=1.0, beta=40.0, loss="hardness", tau=1.0, step_scale="variance"),
            model=ddpm,
            classifier=clf,
            discriminator=disc,
            shard=0,
            out=str(tmp_path / "x.npz"),
            device="cpu",
            branch_from=str(source),
        )


def test_a_guide_is_needed_only_for_a_non_zero_weight(trained, tmp_path):
    """A β = 0 cell samples without the discriminator's files (so it need not wait for H′), with
    the same images as when they are given; a non-zero weight without its guide names what is missing."""
    paths = GuidePaths(str(trained / "clf.pt"), str(trained / "gaussians.pt"))
    without = tmp_path / "without.npz"
    sample_guided_shard(
        params=SAMPLING,
        cell=GuidedCell(alpha=1.0, beta=0.0, loss="hardness", tau=1.0),
        model=str(trained / "ddpm.pt"),
        classifier=paths,
        discriminator=None,
        shard=0,
        out=str(without),
        device="cpu",
    )
    np.testing.assert_array_equal(np.load(without)["images"], guided(trained, "with", 1.0, 0.0)["images"])
    with pytest.raises(ValueError, match="β = 0.5 needs the discriminator's model and Gaussians"):
        sample_guided_shard(
            params=SAMPLING,
            cell=GuidedCell(alpha=1.0, beta=0.5, loss="hardness", tau=1.0),
            model=str(trained / "ddpm.pt"),
            classifier=paths,
            discriminator=None,
            shard=0,
            out=str(without),
            device="cpu",
        )


def test_positive_alpha_raises_mean_hardness(trained):
    model, _ = load_encoder(str(trained / "clf.pt"), torch.device("cpu"))
    gaussians = ClassGaussians.from_state_dict(torch.load(trained / "gaussians.pt", weights_only=True))

    def mean_hardness(samples):
        emb = embed_images(model, samples["images"], 0)
        return gaussians.hardness_of_label(torch.from_numpy(emb), torch.from_numpy(samples["labels"])).mean().item()

    h0 = mean_hardness(guided(trained, "a0", 0.0))
    h_high = mean_hardness(guided(trained, "a4", 4.0))
    assert h_high > h0 + 1.0, (h0, h_high)


def test_std_step_scale_divides_by_sigma():
    """step_scale='std': the sampler's σ_t² · hook becomes σ_t (α ∇*L_g1)."""
    from types import SimpleNamespace

    enc = LinearEncoder()
    x_emb, labels = random_class_data(n=90, k=4)
    g1, _ = ClassGaussians.fit(x_emb, labels, 3, 0.1)
    x, t, y = torch.randn(2, 1, 4, 4), torch.tensor([5, 5]), torch.tensor([0, 1])
    log_var = torch.log(torch.tensor([0.04, 0.25])).reshape(2, 1, 1, 1).expand(2, 1, 4, 4)
    out = SimpleNamespace(log_variance=log_var)
    plain = make_cond_fn(y, GuidedCell(2.0, 0.0, "hardness", 1.0, "variance"), Guide(enc, g1), None)(x, t, out)
    std = make_cond_fn(y, GuidedCell(2.0, 0.0, "hardness", 1.0, "std"), Guide(enc, g1), None)(x, t, out)
    torch.testing.assert_close(plain.flatten(1).norm(dim=1), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(std, plain / torch.tensor([0.2, 0.5]).reshape(2, 1, 1, 1))


def test_a_guide_is_consulted_only_where_it_was_trained(trained):
    """A discriminator trained on t < t_max adds nothing at later steps and its full shift before."""
    model, _ = load_encoder(str(trained / "clf.pt"), torch.device("cpu"))
    gaussians = ClassGaussians.from_state_dict(torch.load(trained / "gaussians.pt", weights_only=True))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0])
    out = type("Out", (), {"log_variance": torch.zeros_like(x)})()
    everywhere = make_cond_fn(labels, GuidedCell(0.0, 1.0, "hardness", 1.0), None, Guide(model, gaussians))
    early_only = make_cond_fn(labels, GuidedCell(0.0, 1.0, "hardness", 1.0), None, Guide(model, gaussians, t_max=20))
    for step in (5, 19):
        t = torch.full((4,), step)
        torch.testing.assert_close(early_only(x, t, out), everywhere(x, t, out))
    for step in (20, 80):
        t = torch.full((4,), step)
        assert torch.count_nonzero(early_only(x, t, out)) == 0 and torch.count_nonzero(everywhere(x, t, out)) > 0


class TinyDiscriminator(torch.nn.Module):
    """H′ in miniature: embed(x, t) and a real/synthetic head. With `constant`, its output does
    not depend on x (a discriminator at chance everywhere)."""

    def __init__(self, dim=16, constant=False, dtype=torch.float32):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.proj = torch.nn.Parameter(torch.randn(dim, 4, generator=generator, dtype=dtype) / 4)
        self.head = torch.nn.Linear(4, 2, dtype=dtype)
        self.constant = constant

    def embed(self, x, t):
        h = torch.tanh(x.flatten(1) @ self.proj + t[:, None].to(x.dtype) / 100)
        return h * 0 if self.constant else h


@pytest.mark.parametrize("beta_form", ["paper", "log_ratio"])
@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_a_discriminator_at_chance_leaves_the_chain_bit_for_bit(beta_form, method):
    """Both β forms give the baseline chain when H′'s output does not depend on x: the paper's
    normalised direction of a zero gradient is zero, and so is the log-ratio's gradient."""
    from lowdensity.core.diffusion import GaussianDiffusion, named_beta_schedule
    from lowdensity.core.noise import NoiseSource

    chain = GaussianDiffusion(named_beta_schedule("cosine", 20))
    emb = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    gaussians, _ = ClassGaussians.fit(emb.numpy(), np.arange(30) % 2, 2, shrinkage=0.1)
    guide = Guide(TinyDiscriminator(constant=True), gaussians)
    labels = torch.zeros(3, dtype=torch.long)
    shape = (3, 1, 4, 4)
    base = chain.sample_loop(SmoothEps(), shape, NoiseSource([1, 2, 3]), method=method)
    for step_scale in ("variance", "std"):
        cell = GuidedCell(0.0, 2.0, "hardness", 1.0, step_scale, beta_form)
        cond_fn = make_cond_fn(labels, cell, None, guide)
        guided = chain.sample_loop(SmoothEps(), shape, NoiseSource([1, 2, 3]), method=method, cond_fn=cond_fn)
        assert torch.equal(base, guided)


def test_the_log_ratio_shift_is_the_gradient_of_the_discriminators_logit_difference():
    """β = 1, log_ratio: the shift is ∇_x log(D/(1 − D)) = ∇_x (logit_real − logit_synthetic),
    unnormalised, whatever the step scale; central differences in float64 agree."""
    torch.manual_seed(0)
    disc = TinyDiscriminator(dtype=torch.float64)
    gaussians, _ = ClassGaussians.fit(np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 2, 2)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([5, 9])
    out = type("Out", (), {"log_variance": torch.full_like(x, -3.0)})()
    for step_scale in ("variance", "std"):
        cell = GuidedCell(0.0, 1.0, "hardness", 1.0, step_scale, "log_ratio")
        shift = make_cond_fn(torch.zeros(2, dtype=torch.long), cell, None, Guide(disc, gaussians))(x, t, out)

        def ratio(z):
            logits = disc.head(disc.embed(z, t))
            return (logits[:, REAL] - logits[:, SYNTHETIC]).detach()

        h = 1e-6
        for index in [(0, 0, 1, 2), (1, 0, 3, 0), (1, 0, 0, 0)]:
            step = torch.zeros_like(x)
            step[index] = h
            numeric = (ratio(x + step) - ratio(x - step))[index[0]] / (2 * h)
            assert float(shift[index]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)
