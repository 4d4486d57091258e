import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import FASHION_MNIST_ROOT
from PIL import Image

from lowdensity import data
from lowdensity.data import DataMissingError, Split, load_split, read_idx, resize_uint8, save_split
from lowdensity.stages.data import prepare_split


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)


def test_read_idx_rejects_wrong_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")


@pytest.mark.skipif(
    not Path(FASHION_MNIST_ROOT).exists(), reason="dataset-fashion-mnist not installed (make test installs it)"
)
def test_real_fashion_mnist():
    train = data.load_fashion_mnist(FASHION_MNIST_ROOT, "train")
    val = data.load_fashion_mnist(FASHION_MNIST_ROOT, "val")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.uint8
    assert val.images.shape == (10000, 1, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(val.labels).tolist() == [1000] * 10
    assert train.class_names[9] == "Ankle boot"
    # real images: dark background, bright object
    assert train.images[:, :, 0, 0].mean() < 5 and train.images.mean() > 50


def test_missing_fashion_mnist_names_package_and_key(tmp_path):
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist.*data.root"):
        data.load_fashion_mnist(str(tmp_path), "train")


def make_cifar_batches(root: Path, n_per_batch: int = 6) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, n_per_batch)),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(data.CIFAR10_CLASSES)}, f)


def test_cifar10_loader_reads_python_batches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    make_cifar_batches(tmp_path)
    # The generated batches cannot match the official MD5 sums; the parsing is torchvision's own.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    train = data.load_cifar10(str(tmp_path), "train")
    val = data.load_cifar10(str(tmp_path), "val")
    assert train.images.shape == (30, 3, 32, 32) and val.images.shape == (6, 3, 32, 32)
    assert train.class_names == data.CIFAR10_CLASSES
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)
    np.testing.assert_array_equal(val.images[2], raw["data"][2].reshape(3, 32, 32))
    assert val.labels.tolist() == [int(v) for v in raw["labels"]]


def test_cifar10_missing_explains_download(tmp_path):
    with pytest.raises(DataMissingError, match="cifar-10-batches-py"):
        data.load_cifar10(str(tmp_path), "train")


def test_image_folder_resizes_and_crops(tmp_path):
    for split in ["train", "val"]:
        for cls, colour in [("n01_goldfish", (255, 128, 0)), ("n02_shark", (0, 64, 255))]:
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40 + 10 * i, 30), colour).save(d / f"{i}.png")
    (tmp_path / "train" / "n01_goldfish" / "notes.txt").write_text("not an image")
    ds = data.load_image_folder(str(tmp_path), "train", 16)
    assert ds.images.shape == (6, 3, 16, 16) and ds.class_names == ("n01_goldfish", "n02_shark")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert tuple(ds.images[4][:, 8, 8]) == (0, 64, 255)


def test_image_folder_missing_split(tmp_path):
    with pytest.raises(DataMissingError, match="train/<class name>"):
        data.load_image_folder(str(tmp_path), "train", 16)


def test_resize_preserves_constant_images_and_mean():
    img = np.full((2, 1, 28, 28), 77, dtype=np.uint8)
    assert (resize_uint8(img, 16) == 77).all()
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    assert abs(resize_uint8(noisy, 14).mean() - noisy.mean()) < 1.0


def test_prepare_split_writes_subsampled_split(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "fm"
    root.mkdir()
    for split, n in [("train", 50), ("t10k", 20)]:
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cfg = {"dataset": "fashion_mnist", "root": str(root), "resolution": 16, "max_train_per_class": 3, "seed": 0}
    prepare_split(params=cfg, split="train", out=str(tmp_path / "train.npz"))
    split = load_split(tmp_path / "train.npz")
    assert split.images.shape == (30, 1, 16, 16)
    assert np.bincount(split.labels).tolist() == [3] * 10
    with np.load(tmp_path / "train.npz") as f:
        assert int(f["resolution"]) == 16 and int(f["channels"]) == 1 and str(f["dataset"]) == "fashion_mnist"
    assert not list(tmp_path.glob(".train.npz*")), "temporary file left behind"


def test_load_split_missing_says_which_rule(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match="nope.npz not found: it is made by rule prepare_data; "
        "rebuild it with: snakemake --forcerun prepare_data .*nope.npz",
    ):
        load_split(tmp_path / "nope.npz")


def test_a_prepared_split_reads_back_in_chunks_from_its_memory_map(tmp_path):
    """The split's images, memory-mapped in place inside the .npz, equal the loaded ones whole and
    chunk by chunk, and a reference subset reads only its rows."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1000, 3, 8, 8), dtype=np.uint8)
    save_split(Split(images, np.arange(1000) % 10, tuple("abcdefghij")), str(tmp_path / "train.npz"), dataset="test")
    loaded, mapped = load_split(tmp_path / "train.npz"), load_split(tmp_path / "train.npz", mmap=True)
    assert isinstance(mapped.images, np.memmap) and not isinstance(loaded.images, np.memmap)
    np.testing.assert_array_equal(mapped.images, images)
    for start in range(0, 1000, 300):
        np.testing.assert_array_equal(mapped.images[start : start + 300], loaded.images[start : start + 300])
    keep = np.array([3, 500, 999])
    np.testing.assert_array_equal(mapped.images[keep], images[keep])
    assert mapped.class_names == loaded.class_names and np.array_equal(mapped.labels, loaded.labels)


def test_a_damaged_split_is_reported_by_the_memory_map_too(tmp_path):
    from lowdensity.io import ArtifactError

    save_split(Split(np.zeros((10, 1, 4, 4), np.uint8), np.arange(10) % 2, ("a", "b")), str(tmp_path / "val.npz"))
    data = (tmp_path / "val.npz").read_bytes()
    (tmp_path / "val.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match=r"val\.npz cannot be read .*--forcerun prepare_data"):
        load_split(tmp_path / "val.npz", mmap=True)
