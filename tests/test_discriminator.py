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
