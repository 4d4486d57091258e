import numpy as np
import pytest
import torch

from lowdensity.guidance.sampling import balanced_labels
from lowdensity.io import atomic_torch_save
from lowdensity.layout import shard_indices, shards_holding_first
from lowdensity.networks.unet import UNet, count_parameters
from lowdensity.stages.sampling import gather_shards, sample_shard, samples_grid

ARCH = dict(
    image_size=8,
    in_channels=1,
    model_channels=16,
    out_channels=1,
    num_res_blocks=1,
    attention_resolutions=(4,),
    channel_mult=(1, 2),
    dropout=0.0,
    num_classes=3,
    num_heads=1,
    scale_shift=True,
)
DIFFUSION = {"num_steps": 100, "schedule": "linear", "variance": "fixed_small"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained U-Net with non-zero output layers, in the train_ddpm file format."""
    torch.manual_seed(0)
    model = UNet(**ARCH)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "arch": ARCH,
            "diffusion": DIFFUSION,
            "steps": 0,
            "parameters": count_parameters(model),
            "class_names": ["a", "b", "c"],
        },
        path,
    )
    return str(path)


def sampling_cfg(**kw):
    cfg = {"num_samples": 7, "shards": 1, "batch_size": 7, "steps": 10, "method": "ddpm", "eta": 0.0, "seed": 100}
    cfg.update(kw)
    return cfg


def draw(tmp_path, model_file, name, **kw):
    cfg = sampling_cfg(**kw)
    paths = []
    for k in range(cfg["shards"]):
        paths.append(str(tmp_path / f"{name}_{k}.npz"))
        sample_shard(cfg, model_file, k, paths[-1], "cpu")
    gather_shards(paths, str(tmp_path / f"{name}.npz"))
    return dict(np.load(tmp_path / f"{name}.npz"))


def test_the_shards_holding_a_prefix_are_those_with_one_of_its_samples():
    for n, shards in [(10, 3), (2000, 4), (5, 8)]:
        for first in range(1, n + 1):
            brute = [s for s in range(shards) if np.any(shard_indices(n, shards, s) < first)]
            assert shards_holding_first(n, shards, first) == brute, (n, shards, first)
    with pytest.raises(ValueError):
        shards_holding_first(10, 3, 11)


def test_shard_indices_partition_the_samples():
    parts = [shard_indices(10, 3, k) for k in range(3)]
    assert np.concatenate(parts).tolist() == list(range(10))
    with pytest.raises(ValueError):
        shard_indices(10, 3, 3)


def test_balanced_labels():
    assert balanced_labels(np.arange(7), 3).tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_same_seed_same_image_whatever_the_shard_layout(tmp_path, model_file, method):
    one = draw(tmp_path, model_file, "one", method=method)
    many = draw(tmp_path, model_file, "many", shards=3, batch_size=2, method=method)
    assert one["images"].shape == (7, 1, 8, 8) and one["images"].dtype == np.uint8
    np.testing.assert_array_equal(one["seeds"], 100 + np.arange(7))
    np.testing.assert_array_equal(one["labels"], balanced_labels(np.arange(7), 3))
    for key in ("images", "labels", "seeds", "indices"):
        np.testing.assert_array_equal(one[key], many[key])
    assert one["seconds_per_image"] > 0 and "cpu" in str(one["device"])


def test_different_seeds_give_different_images(tmp_path, model_file):
    a = draw(tmp_path, model_file, "a")
    b = draw(tmp_path, model_file, "b", seed=200)
    assert not np.array_equal(a["images"], b["images"])


def test_gather_rejects_missing_or_duplicate_shards(tmp_path, model_file):
    cfg = sampling_cfg(shards=3)
    for k in range(3):
        sample_shard(cfg, model_file, k, str(tmp_path / f"s{k}.npz"), "cpu")
    with pytest.raises(ValueError, match="exactly once"):
        gather_shards([str(tmp_path / "s0.npz"), str(tmp_path / "s2.npz")], str(tmp_path / "out.npz"))
    with pytest.raises(ValueError, match="exactly once"):
        gather_shards(
            [str(tmp_path / "s0.npz"), str(tmp_path / "s0.npz"), str(tmp_path / "s1.npz")], str(tmp_path / "out.npz")
        )


def test_grid_png(tmp_path, model_file):
    draw(tmp_path, model_file, "g")
    samples_grid(str(tmp_path / "g.npz"), str(tmp_path / "grid.png"), per_class=3, title="t")
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.width > 100 and im.height > 100
