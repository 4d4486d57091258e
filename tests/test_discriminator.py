"""The discriminator's training options (time law, initialisation, splits, cue removal) and PRD."""

import numpy as np
import pytest
import torch
from scipy import stats

from lowdensity.data import Split
from lowdensity.guidance.classifier import (
    REAL,
    SYNTHETIC,
    draw_timesteps,
    encoder_kwargs,
    init_from_classifier,
    remove_dark_cue,
    timestep_probabilities,
)
from lowdensity.io import atomic_savez, atomic_torch_save
from lowdensity.metrics.prd import max_f_beta, prd, prd_curve
from lowdensity.networks.unet import EncoderUNet
from lowdensity.stages.guidance import discriminator_splits

MODEL = {
    "channels": 16,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
    "dropout": 0.0,
    "num_heads": 1,
    "scale_shift": True,
    "embedding_dim": 8,
}


@pytest.mark.parametrize("law", [{"max": None, "power": 3.0}, {"max": 40, "power": 1.0}, {"max": 70, "power": 0.5}])
def test_timesteps_follow_the_configured_law(law):
    """χ² goodness of fit of 200,000 draws against P(t = k) = ((k+1)/m)^(1/p) − (k/m)^(1/p)."""
    num_steps = 100
    draws = torch.cat(
        [draw_timesteps(20_000, num_steps, law, torch.Generator().manual_seed(s)) for s in range(10)]
    ).numpy()
    probabilities = timestep_probabilities(num_steps, law)
    assert probabilities.sum() == pytest.approx(1.0)
    t_max = law["max"] or num_steps
    assert draws.max() < t_max and probabilities[t_max:].sum() == 0
    observed = np.bincount(draws, minlength=num_steps)[:t_max]
    expected = probabilities[:t_max] * len(draws)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    if law["power"] > 1:  # weighted towards low noise: the first tenth holds far more than a tenth
        assert probabilities[:10].sum() > 0.4


def test_uniform_law_is_adms_uniform_draw():
    generator = torch.Generator().manual_seed(3)
    expected = torch.randint(100, (50,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw_timesteps(50, 100, {"max": None, "power": 1.0}, generator), expected)
    np.testing.assert_allclose(timestep_probabilities(100, None), np.full(100, 0.01))


def test_initialisation_from_the_classifier_copies_everything_but_the_head(tmp_path):
    torch.manual_seed(0)
    classifier = EncoderUNet(**encoder_kwargs(MODEL, 8, 1, 10))
    atomic_torch_save(
        {"state_dict": classifier.state_dict(), "arch": encoder_kwargs(MODEL, 8, 1, 10)}, tmp_path / "clf.pt"
    )
    torch.manual_seed(1)
    discriminator = EncoderUNet(**encoder_kwargs(MODEL, 8, 1, 2))
    head_before = {k: v.clone() for k, v in discriminator.head.state_dict().items()}
    init_from_classifier(discriminator, str(tmp_path / "clf.pt"))
    for key, value in discriminator.state_dict().items():
        if key.startswith("head."):
            assert torch.equal(value, head_before[key[len("head.") :]]) and value.shape[0] == 2
        else:
            assert torch.equal(value, classifier.state_dict()[key]), key
    other = EncoderUNet(**encoder_kwargs({**MODEL, "channels": 8}, 8, 1, 2))
    with pytest.raises(ValueError, match="discriminator.model differs from classifier.model"):
        init_from_classifier(other, str(tmp_path / "clf.pt"))


def _sample_file(path, n, offset):
    images = np.full((n, 1, 8, 8), 0, dtype=np.uint8)
    images[:, 0, 0, 0] = (np.arange(n) + offset) % 256  # an identity per image
    images[:, 0, 0, 1] = (np.arange(n) + offset) // 256
    atomic_savez(path, images=images, labels=np.arange(n) % 2, seeds=np.arange(n) + offset, indices=np.arange(n))


def test_held_out_images_are_the_same_whatever_the_training_size(tmp_path):
    _sample_file(tmp_path / "baseline.npz", 100, 0)
    _sample_file(tmp_path / "pool.npz", 60, 1000)
    real = Split(
        np.arange(500 * 64, dtype=np.int64).reshape(500, 1, 8, 8).astype(np.uint8),
        np.zeros(500, dtype=np.int64),
        ("a",),
    )
    real.images[:, 0, 0, 0] = np.arange(500) % 256
    real.images[:, 0, 0, 1] = 100 + np.arange(500) // 256
    base = {"num_per_set": 100, "holdout": 0.2, "extra_samples": 0, "train": {"seed": 5}}
    train_a, held_a = discriminator_splits(real, [str(tmp_path / "baseline.npz")], base)
    train_b, held_b = discriminator_splits(
        real,
        [str(tmp_path / "baseline.npz"), str(tmp_path / "pool.npz")],
        {**base, "num_per_set": 150, "extra_samples": 50},
    )
    train_c, held_c = discriminator_splits(real, [str(tmp_path / "baseline.npz")], {**base, "num_per_set": 50})
    np.testing.assert_array_equal(held_a.images, held_b.images)
    np.testing.assert_array_equal(held_a.images, held_c.images)
    for train, n in ((train_a, 80), (train_b, 130), (train_c, 30)):
        assert (train.labels == SYNTHETIC).sum() == (train.labels == REAL).sum() == n
    assert (held_a.labels == SYNTHETIC).sum() == 20
    key = lambda split: {tuple(x) for x in split.images[:, 0, 0, :2].tolist()}  # noqa: E731
    assert not key(held_a) & key(train_a) and not key(held_b) & key(train_b)
    pool_ids = {((i + 1000) % 256, (i + 1000) // 256) for i in range(50)}
    assert pool_ids <= key(train_b)  # exactly the first 50 of the pool are used
    assert not {((i + 1000) % 256, (i + 1000) // 256) for i in range(50, 60)} & key(train_b)
    with pytest.raises(ValueError, match="no extra sample pool"):
        discriminator_splits(real, [str(tmp_path / "baseline.npz")], {**base, "extra_samples": 10})


def test_dark_cue_removal_zeroes_only_dark_pixels():
    images = np.array([[[[0, 3, 4, 255]]]], dtype=np.uint8)
    np.testing.assert_array_equal(remove_dark_cue(images, 3), [[[[0, 0, 4, 255]]]])


def test_prd_curve_and_f_scores_hand_computed():
    """P = (1, 0), Q = (½, ½): α(λ) = min(λ, ½), β(λ) = min(1, ½/λ); the maxima sit at λ = ½:
    F_1/8 = (65/64)·½·1 / (½/64 + 1) = 65/129 and F_8 = 65·½ / (64·½ + 1) = 65/66."""
    precision, recall = prd_curve(np.array([0.5, 0.5]), np.array([1.0, 0.0]), num_angles=20001)
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, 20001))
    np.testing.assert_allclose(precision, np.minimum(slopes, 0.5), atol=1e-12)
    np.testing.assert_allclose(recall, np.minimum(1.0, 0.5 / slopes), atol=1e-12)
    assert max_f_beta(precision, recall, 1 / 8) == pytest.approx(65 / 129, abs=1e-4)
    assert max_f_beta(precision, recall, 8) == pytest.approx(65 / 66, abs=1e-4)
    # the other way round precision and recall swap
    precision, recall = prd_curve(np.array([1.0, 0.0]), np.array([0.5, 0.5]), num_angles=20001)
    assert max_f_beta(precision, recall, 1 / 8) == pytest.approx(65 / 66, abs=1e-4)


def test_prd_of_identical_sets_is_one_and_of_disjoint_sets_zero():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 5))
    same = prd(features, features.copy(), num_clusters=10, num_runs=3)
    assert same["f_8"] == pytest.approx(1.0, abs=1e-6) and same["f_1/8"] == pytest.approx(1.0, abs=1e-6)
    apart = prd(features, features + 100.0, num_clusters=10, num_runs=3)
    assert apart["f_8"] == pytest.approx(0.0, abs=1e-9) and apart["f_1/8"] == pytest.approx(0.0, abs=1e-9)


def test_fidelity_rows_agree_with_improved_precision_and_prd():
    from lowdensity.metrics.knn import improved_precision_recall
    from lowdensity.stages.guided_eval import fidelity_with_intervals

    rng = np.random.default_rng(1)
    reference, samples = rng.normal(size=(400, 6)), rng.normal(0.3, 1.2, size=(120, 6))
    prd_cfg = {"num_clusters": 8, "num_angles": 1001, "num_runs": 3}
    intervals = {"bootstrap": 50, "vendi_bootstrap": 10, "level": 0.9, "seed": 0, "vendi_orders": [1]}
    rows = {r["metric"]: r for r in fidelity_with_intervals(reference, samples, 3, prd_cfg, intervals)}
    assert rows["improved_precision"]["value"] == pytest.approx(
        improved_precision_recall(reference, samples, 3)["precision"]
    )
    curve = prd(samples, reference, 8, 1001, 3, seed=0)
    assert rows["prd_f1/8"]["value"] == pytest.approx(curve["f_1/8"]) and rows["prd_f8"]["value"] == pytest.approx(
        curve["f_8"]
    )
    expected = improved_precision_recall(reference, samples, 3)
    assert rows["density"]["value"] == expected["density"] and rows["coverage"]["value"] == expected["coverage"]
    assert np.isnan(rows.pop("recall")["low"])  # the fakes' own balls change with each resample: no interval
    for metric, row in rows.items():
        top = 120 if metric == "vendi" else (np.inf if metric == "density" else 1)
        assert row["low"] <= row["value"] <= row["high"] <= top and row["n"] == 120, metric
        assert row["bootstrap"] == (10 if metric == "vendi" else 50), metric


def test_the_likelihood_law_weights_each_t_by_beta_over_one_minus_alphabar():
    """DG's importance sampling on a discrete chain: P(t = k) ∝ β_k / (1 − ᾱ_k) for k < max, by a
    loop over the schedule; 200,000 draws follow it (χ²)."""
    from lowdensity.core.diffusion import GaussianDiffusion, linear_beta_schedule

    diffusion = GaussianDiffusion(linear_beta_schedule(100))
    for law in ({"max": None, "power": 1.0, "law": "likelihood"}, {"max": 30, "power": 2.0, "law": "likelihood"}):
        t_max = law["max"] or 100
        weights, alphabar = [], 1.0
        for beta in diffusion.betas:
            alphabar *= 1.0 - beta
            weights.append(beta / (1.0 - alphabar))
        expected = np.zeros(100)
        expected[:t_max] = np.array(weights[:t_max]) / sum(weights[:t_max])
        probabilities = timestep_probabilities(100, law, diffusion.betas)
        np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
        draws = torch.cat(
            [draw_timesteps(20_000, 100, law, torch.Generator().manual_seed(s), diffusion.betas) for s in range(10)]
        ).numpy()
        assert draws.max() < t_max
        observed = np.bincount(draws, minlength=100)[:t_max]
        assert stats.chisquare(observed, probabilities[:t_max] * len(draws)).pvalue > 1e-3
        assert probabilities[0] == probabilities.max()  # the cleanest step weighs most
    with pytest.raises(ValueError, match="needs the chain's betas"):
        timestep_probabilities(100, {"max": None, "power": 1.0, "law": "likelihood"})
    with pytest.raises(ValueError, match="timesteps.law must be"):
        timestep_probabilities(100, {"max": None, "power": 1.0, "law": "cosine"})


def test_roc_auc_per_timestep_counts_the_pairs_the_logit_difference_orders(tmp_path):
    """The discriminator's ROC-AUC is P(score of a real > score of a synthetic) (+ ½ for ties), the
    Mann–Whitney count over every (real, synthetic) pair of its held-out images."""
    from lowdensity.core.diffusion import GaussianDiffusion, linear_beta_schedule
    from lowdensity.guidance.classifier import embed_images, evaluate_by_timestep

    torch.manual_seed(0)
    model = EncoderUNet(**encoder_kwargs(MODEL, 8, 1, 2)).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8)
    labels = np.array([SYNTHETIC, REAL] * 12)
    diffusion = GaussianDiffusion(linear_beta_schedule(100))
    table = evaluate_by_timestep(model, Split(images, labels, ("synthetic", "real")), diffusion, [0, 50], seed=3)
    for t, auc in zip(table["timestep"], table["roc_auc"]):
        _, logits = embed_images(model, images, t, diffusion, seed=3, with_logits=True)
        score = logits[:, REAL] - logits[:, SYNTHETIC]
        real, synthetic = score[labels == REAL], score[labels == SYNTHETIC]
        pairs = (real[:, None] > synthetic[None]).sum() + 0.5 * (real[:, None] == synthetic[None]).sum()
        assert auc == pytest.approx(pairs / (len(real) * len(synthetic)), abs=1e-12)


def test_the_frozen_classifier_build_trains_only_its_head(tmp_path):
    """features: frozen_classifier keeps the classifier's encoder bit for bit, trains the
    time-conditioned head, loads back as the same network, and passes gradients to x (guidance)."""
    from lowdensity.guidance.classifier import load_encoder
    from lowdensity.networks.unet import FrozenEncoderHead
    from lowdensity.stages.guidance import train_encoder

    torch.manual_seed(0)
    arch = encoder_kwargs(MODEL, 8, 1, 10)
    classifier = EncoderUNet(**arch)
    atomic_torch_save({"state_dict": classifier.state_dict(), "arch": arch}, tmp_path / "clf.pt")
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8), np.arange(40) % 2, ("synthetic", "real"))
    train = {"steps": 6, "batch_size": 8, "lr": 0.01, "warmup_steps": 0, "ema_decay": 0.0, "checkpoint_every": 3}
    cfg = {
        "model": {**MODEL, "dropout": 0.1},
        "features": "frozen_classifier",
        "head_width": 16,
        "timesteps": {"max": None, "power": 1.0, "law": "likelihood"},
        "train": {**train, "log_every": 3, "seed": 2},
        "eval_timesteps": [0, 50],
    }
    params = {"discriminator": cfg, "diffusion": {"num_steps": 100, "schedule": "linear", "variance": "fixed_small"}}
    paths = dict(model_path=str(tmp_path / "d.pt"), accuracy_csv=str(tmp_path / "a.csv"), device="cpu")
    with pytest.raises(ValueError, match="frozen_classifier"):
        train_encoder(
            params,
            "discriminator",
            train_split=split,
            val_split=split,
            checkpoint_path=str(tmp_path / "c0.pt"),
            **paths,
        )
    torch.manual_seed(2)
    untrained_head = FrozenEncoderHead(encoder=arch, width=16, embedding_dim=8, num_outputs=2, dropout=0.1)
    ema = train_encoder(
        params,
        "discriminator",
        train_split=split,
        val_split=split,
        checkpoint_path=str(tmp_path / "c.pt"),
        init_path=str(tmp_path / "clf.pt"),
        **paths,
    )
    model, state = load_encoder(paths["model_path"], torch.device("cpu"))
    assert isinstance(model, FrozenEncoderHead) and state["build"] == "frozen_classifier"
    for key, value in classifier.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    assert not torch.equal(model.head.weight, untrained_head.head.weight)  # the head trained
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 5, 20, 90])
    ema.eval()
    assert torch.equal(model(x, t), ema(x, t))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x, t)[:, REAL].sum(), x)
    assert grad.abs().sum() > 0
    assert "roc_auc" in open(paths["accuracy_csv"]).readline()
