"""The paper's successors (Boost-and-Skip, the self-guided minority sampler, minority guidance),
the Rarity score and the Fréchet distance."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from lowdensity.core.noise import NoiseSource
from lowdensity.data import DataMissingError
from lowdensity.guidance.minority import (
    LPIPS,
    guided_timesteps,
    l2_distance,
    make_distance,
    minority_classes,
    minority_scores,
    rarity_scores,
    self_guided_cond_fn,
    self_guided_loss,
)
from lowdensity.metrics.fidelity import frechet_distance
from lowdensity.metrics.knn import knn_radii
from lowdensity.networks.ddpm import load_ddpm, training_diffusion
from lowdensity.stages.samplers import sample_with
from lowdensity.stages.sampling import sample_shard

SAMPLING = {"num_samples": 16, "shards": 1, "batch_size": 8, "steps": 20, "method": "ddpm", "eta": 0.0, "seed": 11}
DISTANCE = {"kind": "classifier", "lpips": {"alexnet": None, "linear": None}}


def successor(root, name, sampler, strength, **own):
    params = {"sampling": SAMPLING, "samplers": {sampler: own, "distance": DISTANCE}}
    guides = {"classifier_model": str(root / "clf.pt"), "minority_model": str(root / "clf.pt")}  # any noisy classifier
    sample_with(
        params=params,
        sampler=sampler,
        strength=strength,
        model=str(root / "ddpm.pt"),
        guides=guides,
        shard=0,
        out=str(root / f"{name}.npz"),
        device="cpu",
    )
    return dict(np.load(root / f"{name}.npz"))


@pytest.fixture(scope="module")
def baseline(trained):
    sample_shard(SAMPLING, str(trained / "ddpm.pt"), 0, str(trained / "sweep_base.npz"), "cpu")
    return dict(np.load(trained / "sweep_base.npz"))


@pytest.mark.parametrize(
    "sampler, zero, moved, own",
    [
        ("boost_and_skip", 1.0, 2.5, {"skip": 0}),
        ("self_guided", 0.0, 4.0, {"renoise_fraction": 0.8, "every": 2}),
        ("minority_guidance", 0.0, 20.0, {}),
    ],
)
def test_zero_strength_equals_the_baseline_bit_for_bit(trained, baseline, sampler, zero, moved, own):
    same = successor(trained, f"{sampler}_zero", sampler, zero, **own)
    np.testing.assert_array_equal(same["images"], baseline["images"])
    np.testing.assert_array_equal(same["seeds"], baseline["seeds"])
    np.testing.assert_array_equal(same["labels"], baseline["labels"])
    assert not np.array_equal(
        successor(trained, f"{sampler}_moved", sampler, moved, **own)["images"], baseline["images"]
    )


def test_skipped_steps_keep_the_later_steps_noise(trained):
    """Boost-and-Skip with Δt skipped steps and γ = 1 equals the standard chain whose first Δt
    steps leave x_T untouched: every later step draws the same z."""
    model, meta = load_ddpm(str(trained / "ddpm.pt"), torch.device("cpu"))
    from lowdensity.networks.ddpm import sampling_diffusion

    diffusion = sampling_diffusion(meta["diffusion"], 20)
    y = torch.tensor([0, 1, 2])
    skipped = diffusion.sample_loop(model, (3, 1, 8, 8), NoiseSource([5, 6, 7]), model_kwargs={"y": y}, skip=3)

    calls = []
    original = diffusion.p_sample

    def frozen_first_steps(model_, x, t, noise, kwargs=None, cond_fn=None):
        calls.append(int(t[0]))
        if len(calls) <= 3:
            return x, None
        return original(model_, x, t, noise, kwargs, cond_fn)

    diffusion.p_sample = frozen_first_steps
    standard = diffusion.sample_loop(model, (3, 1, 8, 8), NoiseSource([5, 6, 7]), model_kwargs={"y": y})
    assert calls[:3] == [19, 18, 17]
    torch.testing.assert_close(skipped, standard, rtol=0, atol=0)


def test_minority_classes_are_the_configured_quantiles():
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, 1.0, 1000)
    classes, edges = minority_classes(scores, 4)
    np.testing.assert_allclose(edges[0], np.quantile(scores, [0.25, 0.5, 0.75]))
    assert np.bincount(classes).tolist() == [250, 250, 250, 250]
    for level in range(4):  # class l holds exactly the scores between the l/L and (l+1)/L quantiles
        low = -np.inf if level == 0 else np.quantile(scores, level / 4)
        high = np.inf if level == 3 else np.quantile(scores, (level + 1) / 4)
        np.testing.assert_array_equal(classes == level, (scores >= low) & (scores < high))
    groups = np.arange(1000) % 2
    scores[groups == 1] += 100  # one group far above the other: quantiles within each group
    within, group_edges = minority_classes(scores, 5, groups)
    for g in (0, 1):
        assert np.bincount(within[groups == g]).tolist() == [100] * 5
        np.testing.assert_allclose(group_edges[g], np.quantile(scores[groups == g], [0.2, 0.4, 0.6, 0.8]))
    val, _ = minority_classes(
        np.array([0.0, 1e9]), 5, np.array([0, 1]), group_edges
    )  # other images: the training edges
    assert val.tolist() == [0, 4]


def test_minority_scores_average_the_distance_of_tweedie_estimates(trained):
    model, meta = load_ddpm(str(trained / "ddpm.pt"), torch.device("cpu"))
    chain = training_diffusion(meta["diffusion"])
    images = np.load(trained / "train.npz")["images"][:6]
    labels = np.arange(6) % 3
    scores = minority_scores(chain, model, l2_distance, images, labels, score_t=60, num_draws=3, seed=4, batch_size=4)
    # by hand: the same draws in the same order (batch 4 then 2), one Tweedie estimate each
    generator = torch.Generator().manual_seed(4)
    expected = []
    for start in (0, 4):
        x0 = torch.from_numpy(images[start : start + 4]).float() / 127.5 - 1
        t = torch.full((len(x0),), 60)
        y = torch.from_numpy(labels[start : start + 4])
        total = 0
        for _ in range(3):
            noise = torch.randn(x0.shape, generator=generator)
            x_t = chain.q_sample(x0, t, noise)
            with torch.no_grad():
                eps = model(x_t, t, y=y)
            ab = float(chain.alphas_cumprod[60])
            x0_hat = (x_t - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
            total = total + ((x0 - x0_hat) ** 2).flatten(1).mean(1).double()
        expected.append(total / 3)
    np.testing.assert_allclose(scores, torch.cat(expected).numpy(), rtol=1e-5)


def test_self_guided_gradient_ascends_its_own_loss(trained):
    model, meta = load_ddpm(str(trained / "ddpm.pt"), torch.device("cpu"))
    chain = training_diffusion(meta["diffusion"])
    distance = make_distance(DISTANCE, str(trained / "clf.pt"), torch.device("cpu"))
    torch.manual_seed(0)
    x = torch.randn(6, 1, 8, 8)
    t = torch.full((6,), 50)
    kwargs = {"y": torch.arange(6) % 3}
    renoise_eps = NoiseSource(range(6)).draw((1, 8, 8))
    hook = self_guided_cond_fn(chain, model, distance, kwargs, 1.0, 80, {50}, NoiseSource(range(6)))
    g = hook(x, t, None)
    assert torch.allclose(g.flatten(1).abs().amax(1), torch.ones(6))  # normalised by max |g|

    def loss(z):
        with torch.no_grad():
            return self_guided_loss(chain, model, distance, z, t, 80, renoise_eps, kwargs)

    before, after = loss(x), loss(x + 1e-2 * g)
    assert (after > before).all(), (before, after)
    assert torch.equal(hook(x, torch.full((6,), 40), None), torch.zeros_like(x))  # not a guided step


def test_guided_timesteps_are_every_nth_step_from_the_first():
    assert guided_timesteps(np.array([0, 10, 20, 30, 40, 50]), 2) == {50, 30, 10}
    assert guided_timesteps(np.array([0, 10, 20]), 1) == {0, 10, 20}


def brute_force_rarity(real, radii, fake):
    d = cdist(fake, real)
    out = np.full(len(fake), np.nan)
    for i in range(len(fake)):
        containing = [radii[j] for j in range(len(real)) if d[i, j] <= radii[j]]
        if containing:
            out[i] = min(containing)
    return out


def test_rarity_equals_brute_force_including_samples_outside_every_ball():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(120, 4))
    radii = np.sort(cdist(real, real), axis=1)[:, 3]  # k = 3 as the published code: column 0 is the point itself
    np.testing.assert_allclose(radii, knn_radii(real, 3), rtol=1e-12)  # the radii the pipeline stores
    fake = np.concatenate([rng.normal(size=(40, 4)), rng.normal(8, 1, (5, 4))])  # the last five outside every ball
    ours = rarity_scores(real, radii, fake, block=16)
    expected = brute_force_rarity(real, radii, fake)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    assert np.isnan(ours[-5:]).all() and np.isfinite(ours[:40]).sum() > 20
    np.testing.assert_allclose(ours[np.isfinite(ours)], expected[np.isfinite(expected)], rtol=1e-12)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (500, 1)), rng.normal(-1.0, 0.5, (400, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    assert frechet_distance(a, b) == pytest.approx((a.mean() - b.mean()) ** 2 + (sa - sb) ** 2, rel=1e-9)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    assert frechet_distance(x, x + shift) == pytest.approx((shift**2).sum(), rel=1e-6)


def test_lpips_from_local_files_equals_its_definition(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    net = alexnet(weights=None)
    torch.save(net.state_dict(), tmp_path / "alexnet.pth")
    widths = (64, 192, 384, 256, 256)
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(widths)}
    torch.save(linear, tmp_path / "alex.pth")
    lpips = LPIPS(str(tmp_path / "alexnet.pth"), str(tmp_path / "alex.pth"))
    a, b = torch.rand(3, 1, 16, 16) * 2 - 1, torch.rand(3, 1, 16, 16) * 2 - 1
    ours = lpips(a, b)

    def taps(x):  # by hand: scaling layer, AlexNet's ReLU outputs, unit-normalised channels
        x = torch.nn.functional.interpolate(
            x.expand(-1, 3, -1, -1), size=(64, 64), mode="bilinear", align_corners=False
        )
        x = (x - torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)) / torch.tensor(
            [0.458, 0.448, 0.450]
        ).reshape(1, 3, 1, 1)
        out = []
        for i, layer in enumerate(net.features):
            x = layer(x)
            if isinstance(layer, torch.nn.ReLU):
                out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    with torch.no_grad():
        expected = sum(
            ((fa - fb) ** 2 * linear[f"lin{i}.model.1.weight"]).sum(1).mean((1, 2))
            for i, (fa, fb) in enumerate(zip(taps(a), taps(b)))
        )
    torch.testing.assert_close(ours, expected)
    assert torch.allclose(lpips(a, a), torch.zeros(3))


def test_lpips_without_its_weights_says_what_to_download(tmp_path):
    with pytest.raises(DataMissingError, match=r"samplers.distance.lpips: missing alexnet .*alexnet-owt-7be5be79.pth"):
        LPIPS(str(tmp_path / "missing.pth"), str(tmp_path / "alex.pth"))
