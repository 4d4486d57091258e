"""The GAN baseline: shapes and conditioning, hinge losses, training, resume, per-seed sampling,
and the pretrained BigGAN-deep loader."""

import json

import numpy as np
import pytest
import torch

from lowdensity.core.noise import NoiseSource
from lowdensity.data import Split, save_split
from lowdensity.networks.gan import (
    Discriminator,
    Generator,
    build_gan,
    hinge_discriminator_loss,
    hinge_generator_loss,
    load_generator,
    load_pretrained_biggan,
    truncated_normal,
)
from lowdensity.stages.gan import sample_gan_shard, train_gan

MODEL = {
    "z_dim": 16,
    "g_channels": 8,
    "g_channel_mult": [2, 1],
    "d_channels": 8,
    "d_channel_mult": [1, 2],
    "class_embedding_dim": 8,
    "attention_resolutions": [8],
}
TRAIN = {
    "steps": 30,
    "batch_size": 16,
    "d_steps": 1,
    "lr_g": 2e-4,
    "lr_d": 1e-3,
    "ema_decay": 0.9,
    "ema_start": 5,
    "standing_batches": 2,
    "checkpoint_every": 10,
    "log_every": 5,
    "seed": 0,
}


def test_generator_and_discriminator_shapes_and_conditioning():
    torch.manual_seed(0)
    g = Generator(
        16, 3, 5, z_dim=24, channels=8, channel_mult=[4, 2, 1], class_embedding_dim=8, attention_resolutions=[8]
    )
    d = Discriminator(16, 3, 5, channels=8, channel_mult=[1, 2, 4], attention_resolutions=[8])
    assert set(g.attention) == {"0"} and set(d.attention) == {"0"}  # one SAGAN block at 8×8 in each
    z = torch.randn(4, 24)
    y = torch.tensor([0, 1, 2, 3])
    g.eval()
    x = g(z, y)
    assert x.shape == (4, 3, 16, 16) and x.abs().max() <= 1
    assert not torch.allclose(g(z, y), g(z, (y + 1) % 5))  # the class changes the image
    assert d(x, y).shape == (4,)
    assert not torch.allclose(d(x, y), d(x, (y + 1) % 5))  # projection: the score depends on the label
    with pytest.raises(ValueError, match="channel_mult"):
        Generator(32, 3, 5, 24, 8, [4, 2, 1], 8, [])
    with pytest.raises(ValueError, match="z_dim"):
        Generator(16, 3, 5, 25, 8, [4, 2, 1], 8, [])


def test_hinge_losses_match_hand_computed_values():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.5])
    # mean(max(0, 1 − r)) = (0 + 0.5 + 2) / 3; mean(max(0, 1 + f)) = (0 + 1 + 2.5) / 3
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert hinge_generator_loss(fake).item() == pytest.approx(0.5 / 3)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    """Two classes of 8×8 grey images: a bright square on the left or on the right."""
    rng = np.random.default_rng(0)
    images = np.zeros((64, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(64) % 2
    for i, c in enumerate(labels):
        images[i, 0, 2:6, (0 if c == 0 else 4) : (4 if c == 0 else 8)] = 200
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("gan") / "train.npz"
    save_split(Split(images, labels, ("left", "right")), str(path))
    return path, images, labels


def _real_hinge(discriminator, images, labels):
    x = torch.from_numpy(images).float().div(127.5).sub(1)
    with torch.no_grad():
        return torch.relu(1 - discriminator(x, torch.from_numpy(labels).long())).mean().item()


@pytest.mark.parametrize("channels_last, precision", [(False, "fp32"), (True, "fp32"), (True, "bf16")])
def test_training_lowers_the_discriminators_hinge_loss_on_real_data_and_resumes_exactly(
    toy_data, tmp_path, channels_last, precision
):
    """In either layout and precision (bf16: the default's on a CPU with bf16 instructions)."""
    path, images, labels = toy_data
    cfg = {"model": MODEL, "train": {**TRAIN, "channels_last": channels_last, "precision": precision}}
    train_gan(
        params=cfg,
        data=str(path),
        model=str(tmp_path / "model.pt"),
        loss_csv=str(tmp_path / "loss.csv"),
        checkpoint=str(tmp_path / "ck.pt"),
        device="cpu",
    )
    arch = {"model": MODEL, "image_size": 8, "channels": 1, "num_classes": 2}
    torch.manual_seed(TRAIN["seed"])
    _, untrained = build_gan(arch)  # the same initial weights as the run's
    trained = build_gan(arch)[1]
    trained.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True)["discriminator"])
    assert _real_hinge(trained.eval(), images, labels) < 0.5 * _real_hinge(untrained.eval(), images, labels)

    # cut off after 10 steps (checkpoint written), then rerun to 30: equal to the uninterrupted run
    short = {"model": MODEL, "train": {**cfg["train"], "steps": 10}}
    cut = tmp_path / "cut"
    train_gan(
        params=short,
        data=str(path),
        model=str(cut / "model.pt"),
        loss_csv=str(cut / "loss.csv"),
        checkpoint=str(cut / "ck.pt"),
        device="cpu",
    )
    train_gan(
        params=cfg,
        data=str(path),
        model=str(cut / "model.pt"),
        loss_csv=str(cut / "loss.csv"),
        checkpoint=str(cut / "ck.pt"),
        device="cpu",
    )
    assert torch.load(tmp_path / "model.pt", weights_only=True)["precision"] == precision
    full = torch.load(tmp_path / "model.pt", weights_only=True)["generator"]
    resumed = torch.load(cut / "model.pt", weights_only=True)["generator"]
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_a_decaying_rate_is_a_different_gan_and_a_shorter_decaying_run_is_not_continued(toy_data, tmp_path, caplog):
    """`lr_schedule: linear` (SNGAN's decay of both rates to zero) changes the trajectory; since every
    step's rate depends on the run's length, a 10-step decaying run's checkpoint is not resumed by a
    30-step one, which ends equal to a fresh 30-step decaying run."""
    path, _, _ = toy_data
    runs = {}
    for name, train in [("constant", TRAIN), ("linear", {**TRAIN, "lr_schedule": "linear"})]:
        out = tmp_path / name
        train_gan(
            params={"model": MODEL, "train": train},
            data=str(path),
            model=str(out / "model.pt"),
            loss_csv=str(out / "loss.csv"),
            checkpoint=str(out / "ck.pt"),
            device="cpu",
        )
        runs[name] = torch.load(out / "model.pt", weights_only=True)["generator"]
    assert not all(torch.equal(runs["constant"][k], runs["linear"][k]) for k in runs["linear"])
    decaying = {**TRAIN, "lr_schedule": "linear"}
    cut = tmp_path / "cut"
    train_gan(
        params={"model": MODEL, "train": {**decaying, "steps": 10}},
        data=str(path),
        model=str(cut / "model.pt"),
        loss_csv=str(cut / "loss.csv"),
        checkpoint=str(cut / "ck.pt"),
        device="cpu",
    )
    train_gan(
        params={"model": MODEL, "train": decaying},
        data=str(path),
        model=str(cut / "model.pt"),
        loss_csv=str(cut / "loss.csv"),
        checkpoint=str(cut / "ck.pt"),
        device="cpu",
    )
    assert "differently configured run" in caplog.text
    resumed = torch.load(cut / "model.pt", weights_only=True)["generator"]
    for key in resumed:
        assert torch.equal(resumed[key], runs["linear"][key]), key


def test_the_channels_last_layout_trains_the_same_gan_up_to_rounding(toy_data, tmp_path):
    """NHWC is a memory layout, not a model: five steps from the same seed, in either layout (the
    checkpoint's convolution weights say which), give EMA generators whose images agree to float32
    rounding (1e-5). Images, not weights: a bias feeding a batch norm has no gradient, so Adam
    turns its rounding-level gradient into a step of the learning rate's size in either layout."""
    path, _, _ = toy_data
    z = torch.randn(32, MODEL["z_dim"], generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 2
    images, nhwc = {}, {}
    for channels_last in (False, True):
        cfg = {"model": MODEL, "train": {**TRAIN, "steps": 5, "ema_start": 0, "channels_last": channels_last}}
        out = tmp_path / str(channels_last)
        train_gan(
            params=cfg,
            data=str(path),
            model=str(out / "model.pt"),
            loss_csv=str(out / "loss.csv"),
            checkpoint=str(out / "ck.pt"),
            device="cpu",
        )
        checkpoint = torch.load(out / "ck.pt", weights_only=True)
        nhwc[channels_last] = all(
            w.is_contiguous(memory_format=torch.channels_last)
            for net in ("generator", "discriminator")
            for w in checkpoint[net].values()
            if w.ndim == 4
        )
        with torch.no_grad():
            images[channels_last] = load_generator(str(out / "model.pt"), torch.device("cpu"))[0](z, y)
    assert nhwc == {False: False, True: True}
    torch.testing.assert_close(images[True], images[False], rtol=0, atol=1e-5)


def test_a_non_finite_loss_stops_with_the_step(toy_data, tmp_path):
    path, _, _ = toy_data
    bad = {"model": MODEL, "train": {**TRAIN, "lr_d": float("inf")}}
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        train_gan(
            params=bad,
            data=str(path),
            model=str(tmp_path / "m.pt"),
            loss_csv=str(tmp_path / "l.csv"),
            checkpoint=str(tmp_path / "c.pt"),
            device="cpu",
        )


def test_sampling_is_deterministic_per_seed_whatever_the_shards(toy_data, tmp_path):
    path, _, _ = toy_data
    model = tmp_path / "model.pt"
    train_gan(
        params={"model": MODEL, "train": {**TRAIN, "steps": 3}},
        data=str(path),
        model=str(model),
        loss_csv=str(tmp_path / "l.csv"),
        checkpoint=str(tmp_path / "c.pt"),
        device="cpu",
    )
    gan = {"truncation": None, "pretrained": {"path": None, "truncation": 1.0, "imagenet_classes": None}}
    one = {"num_samples": 10, "shards": 1, "seed": 100, "batch_size": 4}
    sample_gan_shard(params=gan, sampling=one, shard=0, out=str(tmp_path / "all.npz"), model=str(model), device="cpu")
    parts = [np.load(_shard(gan, {**one, "shards": 3, "batch_size": 3}, k, model, tmp_path)) for k in range(3)]
    whole = np.load(tmp_path / "all.npz")
    np.testing.assert_array_equal(whole["images"], np.concatenate([p["images"] for p in parts]))
    np.testing.assert_array_equal(whole["labels"], np.arange(10) % 2)
    assert len(np.unique(whole["images"].reshape(10, -1), axis=0)) == 10  # different seeds, different images
    truncated = _shard({**gan, "truncation": 0.5}, one, 0, model, tmp_path)
    assert not np.array_equal(np.load(truncated)["images"], whole["images"])


def _shard(gan, sampling, k, model, tmp_path):
    out = tmp_path / f"shard_{sampling['shards']}_{k}_{gan['truncation']}.npz"
    sample_gan_shard(params=gan, sampling=sampling, shard=k, out=str(out), model=str(model), device="cpu")
    return out


def test_truncated_latents_stay_within_the_threshold_and_depend_only_on_the_seed():
    z = truncated_normal(NoiseSource([1, 2, 3]), 512, 0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    torch.testing.assert_close(truncated_normal(NoiseSource([2]), 512, 0.5)[0], z[1], rtol=0, atol=0)
    free = truncated_normal(NoiseSource([1]), 512, None)
    assert free.abs().max() > 2


def test_pretrained_biggan_missing_file_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin.*biggan-deep-128"):
        load_pretrained_biggan(str(tmp_path / "biggan"), "cpu")


def test_pretrained_biggan_deep_samples_through_the_pipeline(toy_data, tmp_path):
    """A small randomly initialised BigGAN-deep saved the way the released weights are
    (pytorch_model.bin + config.json) loads strictly and draws the pipeline's sample set."""
    biggan = pytest.importorskip("pytorch_pretrained_biggan")
    config = biggan.BigGANConfig(
        output_dim=16,
        z_dim=8,
        class_embed_dim=8,
        channel_width=4,
        num_classes=1000,
        layers=[(True, 16, 8), (False, 8, 4), (False, 4, 2), (True, 2, 1)],
        attention_layer_position=1,
    )
    torch.manual_seed(0)
    model = biggan.BigGAN(config)
    # Spectral norm divides each weight by u·Wv; at random init u and v are random, so
    # u·Wv can be ~0.01 and sixteen such layers overflow to NaN on some CPUs. Released
    # weights hold converged power-iteration vectors: store the true top singular pair.
    for module in model.modules():
        if hasattr(module, "weight_u"):
            left, _, right = torch.linalg.svd(module.weight_orig.detach().flatten(1), full_matrices=False)
            module.weight_u.copy_(left[:, 0])
            module.weight_v.copy_(right[0])
    folder = tmp_path / "biggan"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    path, _, _ = toy_data
    gan = {"truncation": None, "pretrained": {"path": str(folder), "truncation": 0.4, "imagenet_classes": [207, 208]}}
    sampling = {"num_samples": 6, "shards": 2, "seed": 7, "batch_size": 4}
    sample_gan_shard(params=gan, sampling=sampling, shard=1, out=str(tmp_path / "s.npz"), data=str(path), device="cpu")
    out = np.load(tmp_path / "s.npz")
    assert out["images"].shape == (3, 1, 8, 8) and out["images"].dtype == np.uint8  # resized, grey like the data
    np.testing.assert_array_equal(out["labels"], [1, 0, 1])
    assert str(out["meta_generator"]).startswith("biggan-deep")
    with pytest.raises(ValueError, match="imagenet_classes"):
        sample_gan_shard(
            params={**gan, "pretrained": {**gan["pretrained"], "imagenet_classes": [1]}},
            sampling=sampling,
            shard=0,
            out=str(tmp_path / "x.npz"),
            data=str(path),
            device="cpu",
        )
