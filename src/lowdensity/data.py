"""Datasets: Fashion-MNIST (default), CIFAR-10 and ImageNet-style image folders.

The prepare stage writes one `.npz` per split with
    images       uint8, (N, C, H, W), at the configured resolution
    labels       int64, (N,)
    class_names  str, (num_classes,)
    resolution, channels, dataset
and every later stage reads only those files (`load_split`).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lowdensity.io import ArtifactError, atomic_savez, mmap_npz_member, read_npz, rebuild_hint

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class NonFiniteSampleError(ValueError):
    """A generated image holds NaN or infinite values: nothing is written from it."""


class DataMissingError(FileNotFoundError):
    """Raised with instructions when a dataset is not where the config says."""


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    class_names: tuple

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]


# ----------------------------------------------------------------------------- readers


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzipped) idx file: magic 0x0000 08 <ndim>, big-endian int32 sizes, uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} bytes")
    return data.reshape(tuple(int(d) for d in dims))


def load_fashion_mnist(root: str, split: str) -> Split:
    image_file, label_file = FASHION_MNIST_FILES[split]
    paths = [Path(root) / image_file, Path(root) / label_file]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataMissingError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. Install the Debian package "
            f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist, which puts them in "
            f"/usr/share/datasets/fashion-mnist), or download the four *-ubyte.gz files of "
            f"Fashion-MNIST and set the config key data.root to their folder."
        )
    images = read_idx(paths[0])[:, None]  # (N, 1, 28, 28)
    labels = read_idx(paths[1]).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels for split {split}")
    return Split(images, labels, FASHION_MNIST_CLASSES)


def load_cifar10(root: str, split: str, download: bool = False) -> Split:
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(root=root, train=(split == "train"), download=download)
    except RuntimeError as err:
        raise DataMissingError(
            f"CIFAR-10 not found under {root!r} ({err}). Download the python version "
            f"(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), extract it "
            f"so that {root}/cifar-10-batches-py/ holds data_batch_1..5 and test_batch, and set "
            f"data.root to that folder; or set data.download: true on a machine with internet."
        ) from err
    images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))  # (N, 3, 32, 32)
    return Split(images, np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes))


def load_image_folder(root: str, split: str, resolution: int) -> Split:
    """ImageNet-style `root/<split>/<class>/*.{jpg,png,...}`; each image is resized so its
    shorter side is `resolution` (bicubic, antialiased) and centre-cropped (as ADM does)."""
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataMissingError(
            f"image folder {split_dir} not found: data.root must hold '{split}/<class name>/<images>' "
            f"(ImageNet-style; for ImageNet use the train/ and val/ folders with one subfolder per class)."
        )
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise DataMissingError(f"{split_dir} has no class subfolders")
    files = [
        (label, file)
        for label, name in enumerate(classes)
        for file in sorted((split_dir / name).iterdir())
        if file.suffix.lower() in IMG_EXTENSIONS
    ]
    if not files:
        raise DataMissingError(f"{split_dir} holds no images with extensions {IMG_EXTENSIONS}")
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)  # filled in place: one copy in memory
    for i, (_, file) in enumerate(files):
        with Image.open(file) as im:
            im = im.convert("RGB")
            scale = resolution / min(im.size)
            im = im.resize(
                (max(resolution, round(im.width * scale)), max(resolution, round(im.height * scale))), Image.BICUBIC
            )
            left, top = (im.width - resolution) // 2, (im.height - resolution) // 2
            images[i] = np.asarray(im.crop((left, top, left + resolution, top + resolution))).transpose(2, 0, 1)
    return Split(images, np.asarray([label for label, _ in files], dtype=np.int64), tuple(classes))


# ----------------------------------------------------------------------------- preparation


def resize_uint8(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize (N, C, H, W) uint8 images with antialiased bilinear filtering."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    x = torch.from_numpy(images).float()
    out = []
    for chunk in x.split(4096):
        out.append(
            F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        )
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8).numpy()


def stratified_subset(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most `per_class` images of every class, chosen at random with `seed`, in order."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def load_raw(cfg: dict, split: str) -> Split:
    name = cfg["dataset"]
    if name == "fashion_mnist":
        return load_fashion_mnist(cfg["root"], split)
    if name == "cifar10":
        return load_cifar10(cfg["root"], split, cfg.get("download", False))
    if name == "image_folder":
        return load_image_folder(cfg["root"], split, cfg["resolution"])
    raise ValueError(f"data.dataset: unknown dataset {name!r}")


def save_split(split: Split, path: str, dataset: str = "") -> None:
    atomic_savez(
        path,
        images=split.images,
        labels=split.labels,
        class_names=np.asarray(split.class_names),
        resolution=np.int64(split.resolution),
        channels=np.int64(split.channels),
        dataset=np.asarray(dataset),
    )


def load_split(path: str | os.PathLike, mmap: bool = False) -> Split:
    """A prepared split; with `mmap`, its images memory-mapped read-only in the .npz (rows are read
    from disk when used: a subset or a slice of a split larger than memory)."""
    data = read_npz(
        path, ("labels", "class_names") if mmap else ("images", "labels", "class_names"), made_by="prepare_data"
    )
    if mmap:
        data["images"] = mmap_npz_member(path, "images", made_by="prepare_data")
    check_images(path, data, ("labels",), made_by="prepare_data")
    return Split(data["images"], data["labels"].astype(np.int64), tuple(str(c) for c in data["class_names"]))


def split_info(path: str | os.PathLike) -> tuple[tuple, int, int]:
    """(class names, resolution, channels) of a prepared split, without reading its images."""
    data = read_npz(path, ("class_names", "resolution", "channels"), made_by="prepare_data")
    return tuple(str(c) for c in data["class_names"]), int(data["resolution"]), int(data["channels"])


def image_shape(split_path: str | os.PathLike) -> tuple[int, int, int]:
    """(C, H, W) of the prepared data: what every sample file must match."""
    _, resolution, channels = split_info(split_path)
    return channels, resolution, resolution


SAMPLE_KEYS = ("labels", "seeds", "indices")


def check_images(
    path, arrays: dict, keys: tuple[str, ...], shape: tuple[int, int, int] | None = None, made_by: str | None = None
) -> None:
    """An image set as the pipeline writes it: `images` uint8 (N, C, H, W) with (C, H, W) =
    `shape` when given, and each of `keys` a vector of length N; else an ArtifactError naming
    the file, what was found and what was expected."""
    if "images" not in arrays:
        raise ArtifactError(
            f"{path} has no 'images' array (it holds {', '.join(arrays) or 'none'}): {rebuild_hint(path, made_by)}"
        )
    images = arrays["images"]
    expected = (
        f"uint8 images of shape (N, {', '.join(map(str, shape))})" if shape else "uint8 images of shape (N, C, H, W)"
    )
    problems = []
    if images.dtype != np.uint8:
        problems.append(f"images are {images.dtype}")
    if images.ndim != 4:
        problems.append(f"images have shape {images.shape}")
    elif shape is not None and tuple(images.shape[1:]) != tuple(shape):
        problems.append(f"images have shape {images.shape}")
    for key in keys:
        if key not in arrays:
            problems.append(f"no '{key}' array")
        elif arrays[key].shape != (len(images),):
            problems.append(f"'{key}' has shape {arrays[key].shape} for {len(images)} images")
    if problems:
        raise ArtifactError(
            f"{path}: {'; '.join(problems)}; expected {expected}"
            f"{' with ' + ', '.join(keys) + ' of length N' if keys else ''} (the prepared data's channels and "
            f"resolution): {rebuild_hint(path, made_by)}"
        )


def read_sample_set(
    path: str | os.PathLike,
    shape: tuple[int, int, int] | None,
    keys: tuple[str, ...] | None = ("images", "labels", "seeds", "class_names"),
) -> dict[str, np.ndarray]:
    """The arrays `keys` (all when None) of a sample file (a shard or a gathered set), checked:
    uint8 images of the prepared data's (C, H, W) = `shape`, with labels, seeds and indices of the
    same length."""
    data = read_npz(path, None if keys is None else tuple(dict.fromkeys(("images", *SAMPLE_KEYS, *keys))))
    check_images(path, data, SAMPLE_KEYS, shape)
    return data if keys is None else {k: data[k] for k in keys}


def to_model_range(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    if isinstance(images_uint8, np.ndarray) and not images_uint8.flags.writeable:  # a memory-mapped slice
        images_uint8 = np.array(images_uint8)
    x = torch.as_tensor(images_uint8).float()
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [-1, 1] → uint8 [0, 255] (rounded, clipped). NaN and infinite values are refused:
    cast to uint8 they would become black or white pixels in a file that looks valid."""
    x = x.detach().cpu().float()
    finite = torch.isfinite(x).flatten(1).all(dim=1) if x.dim() > 1 else torch.isfinite(x)
    if not finite.all():
        bad = (~finite).nonzero().flatten().tolist()
        raise NonFiniteSampleError(
            f"{len(bad)} of {len(finite)} images of the batch hold NaN or infinite values (first: "
            f"image {bad[0]} of the batch); nothing was written. The network or the guidance "
            "produced them: check the weights and Gaussians this rule reads, and rebuild them"
        )
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
