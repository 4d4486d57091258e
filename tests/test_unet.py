import pytest
import torch
from conftest import small_unet

from lowdensity.networks.unet import EncoderUNet, UNet, count_parameters, timestep_embedding


def test_unet_shapes_and_learned_sigma_output():
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 999]), torch.tensor([0, 2])
    assert small_unet()(x, t, y).shape == (2, 1, 8, 8)
    assert small_unet(out_channels=2)(x, t, y).shape == (2, 2, 8, 8)


def test_class_and_time_conditioning_change_the_output():
    torch.manual_seed(0)
    model = small_unet()
    for p in model.parameters():  # the zero-initialised output layers would hide the conditioning
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 1, 8, 8)
    base = model(x, torch.tensor([10]), torch.tensor([0]))
    assert not torch.allclose(base, model(x, torch.tensor([10]), torch.tensor([1])))
    assert not torch.allclose(base, model(x, torch.tensor([500]), torch.tensor([0])))


def test_class_conditional_model_requires_labels():
    with pytest.raises(ValueError, match="pass y"):
        small_unet()(torch.randn(1, 1, 8, 8), torch.tensor([3]))


def test_paper_cifar10_unet_has_35_7M_parameters():
    model = UNet(
        image_size=32,
        in_channels=3,
        model_channels=128,
        out_channels=3,
        num_res_blocks=2,
        attention_resolutions=(16,),
        channel_mult=(1, 2, 2, 2),
        dropout=0.1,
        scale_shift=False,
    )
    assert count_parameters(model) == pytest.approx(35.7e6, rel=0.005)


def test_encoder_embedding_and_head():
    enc = EncoderUNet(
        image_size=8,
        in_channels=1,
        model_channels=16,
        num_outputs=5,
        num_res_blocks=1,
        attention_resolutions=(4,),
        channel_mult=(1, 2),
        embedding_dim=12,
    )
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 5, 900])
    assert enc.embed(x, t).shape == (3, 12)
    torch.testing.assert_close(enc(x, t), enc.head(enc.embed(x, t)))


def test_timestep_embedding_is_sinusoidal():
    emb = timestep_embedding(torch.tensor([0, 7]), 6)
    assert emb.shape == (2, 6)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))


def test_bad_resolution_is_rejected():
    with pytest.raises(ValueError, match="cannot be halved"):
        small_unet(image_size=6, channel_mult=(1, 2, 2))
