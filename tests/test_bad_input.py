"""Bad input never yields a wrong number: malformed sample files, damaged prepared data and
failed writes stop with a message that names the file, what was expected and the fix, and
nothing is written in their place."""

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lowdensity import io
from lowdensity.data import Split, load_split, save_split
from lowdensity.io import ArtifactError, OutputWriteError, atomic_torch_save, read_npz
from lowdensity.stages.evaluation import extract_features
from lowdensity.stages.sampling import gather_shards

GREY_8 = (1, 8, 8)


@pytest.fixture()
def data_split(tmp_path):
    """A prepared 8×8 grey split: the shape every sample file must have."""
    images = np.random.default_rng(0).integers(0, 256, (20, *GREY_8), dtype=np.uint8)
    path = tmp_path / "results/data/val.npz"
    save_split(Split(images, np.arange(20) % 2, ("a", "b")), str(path), dataset="test")
    return path


def write_shard(path, images, **overrides):
    n = len(images)
    arrays = {
        "images": images,
        "labels": np.arange(n) % 2,
        "seeds": np.arange(n) + 100,
        "indices": np.arange(n),
        "seconds": np.float64(1.0),
        "seconds_per_image": np.float64(1.0 / n),
        "device": np.asarray("cpu"),
        "class_names": np.asarray(["a", "b"]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return str(path)


RNG = np.random.default_rng(1)
MALFORMED = {
    "float images in [0, 1]": (RNG.random((4, *GREY_8)).astype(np.float32), {}, "images are float32"),
    "int64 images up to 255000": (RNG.integers(0, 255001, (4, *GREY_8)), {}, "images are int64"),
    "3 channels for grey data": (
        RNG.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8),
        {},
        r"images have shape \(4, 3, 8, 8\)",
    ),
    "16×16 for 8×8 data": (
        RNG.integers(0, 256, (4, 1, 16, 16), dtype=np.uint8),
        {},
        r"images have shape \(4, 1, 16, 16\)",
    ),
    "no seeds": (RNG.integers(0, 256, (4, *GREY_8), dtype=np.uint8), {"seeds": None}, "no 'seeds' array"),
    "labels of another length": (
        RNG.integers(0, 256, (4, *GREY_8), dtype=np.uint8),
        {"labels": np.zeros(3, np.int64)},
        r"'labels' has shape \(3,\) for 4 images",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_gather_refuses_a_malformed_shard(tmp_path, data_split, case):
    images, overrides, problem = MALFORMED[case]
    good = write_shard(
        tmp_path / "results/samples/guided/shard_0.npz", RNG.integers(0, 256, (4, *GREY_8), dtype=np.uint8)
    )
    bad = write_shard(tmp_path / "results/samples/guided/shard_1.npz", images, indices=np.arange(4, 8), **overrides)
    out = tmp_path / "results/samples/guided.npz"
    with pytest.raises(ArtifactError, match=problem) as err:
        gather_shards([good, bad], str(out), (1, 8, 8))
    message = str(err.value)
    assert message.startswith(bad) and "expected uint8 images of shape (N, 1, 8, 8)" in message
    assert "snakemake --forcerun sample_guided" in message
    assert not out.exists() and not list(out.parent.glob(".guided.npz*"))


@pytest.mark.parametrize("case", ["float images in [0, 1]", "3 channels for grey data", "16×16 for 8×8 data"])
def test_feature_extraction_refuses_a_malformed_sample_set(tmp_path, data_split, case):
    images, _, problem = MALFORMED[case]
    samples = write_shard(tmp_path / "results/samples/baseline.npz", images)
    out = tmp_path / "results/features/classifier/baseline.npy"
    with pytest.raises(ArtifactError, match=problem) as err:
        extract_features(
            params={"num_reference": None, "extractors": []},
            extractor="classifier",
            set_name="baseline",
            images=samples,
            data=str(data_split),
            out=str(out),
            classifier="unused.pt",
            device="cpu",
        )
    assert "snakemake --forcerun gather_samples" in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_prepared_data_names_the_file_and_the_rule(tmp_path, data_split, damage):
    data = data_split.read_bytes()
    data_split.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(ArtifactError) as err:
        load_split(data_split)
    message = str(err.value)
    assert message.startswith(f"{data_split} cannot be read") and "damaged or truncated" in message
    rebuild = "it is made by rule prepare_data; rebuild it with: snakemake --forcerun prepare_data results/data/val.npz"
    assert message.endswith(rebuild)


def test_every_reader_names_a_missing_array_and_its_rule(tmp_path):
    path = tmp_path / "results/metrics/classifier/reference_neighbours.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, distances=np.zeros((2, 3)))
    with pytest.raises(
        ArtifactError, match=r"has no array 'indices' \(it holds distances\): it is made by rule reference_neighbours"
    ):
        read_npz(path, ("distances", "indices"))


def test_damaged_features_name_the_file_and_the_rule(tmp_path):
    from lowdensity.stages.evaluation import load_features, save_features

    path = tmp_path / "results/features/classifier/real.npy"
    save_features(str(path), np.zeros((4, 3), np.float32), np.arange(4))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"real\.npy cannot be read .*it is made by rule extract_features"):
        load_features(str(path))


def test_a_full_disk_while_checkpointing_names_the_file_and_the_cause(tmp_path, monkeypatch):
    """torch.save reports a full disk as 'unexpected pos'; the atomic writer says which file and why,
    and leaves neither the file nor its temporary."""

    def full_disk(obj, f):
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(100 << 30, 100 << 30, 0))
    target = tmp_path / "results/ddpm/checkpoint.pt"
    with pytest.raises(OutputWriteError) as err:
        atomic_torch_save({"step": 1}, target)
    assert str(err.value).startswith(
        f"could not write {target}: no space left on the device (0.0 MiB free in {target.parent}"
    )
    assert list(target.parent.iterdir()) == []


def test_a_write_without_permission_says_so(tmp_path, monkeypatch):
    def refused(obj, f):
        raise PermissionError(errno.EACCES, "Permission denied", str(f))

    monkeypatch.setattr(torch, "save", refused)
    with pytest.raises(OutputWriteError, match=r"could not write .*model\.pt: no permission to write in"):
        atomic_torch_save({}, tmp_path / "model.pt")


def test_the_cli_prints_one_line_for_an_anticipated_error(tmp_path, data_split):
    """No traceback for an error whose message already says what to do: one line with the
    command, the file and the fix."""
    shard = write_shard(tmp_path / "results/samples/gan/shard_0.npz", RNG.random((4, *GREY_8)).astype(np.float32))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowdensity.cli",
            "gather",
            "--data",
            str(data_split),
            "--out",
            str(tmp_path / "gan.npz"),
            "--shards",
            json.dumps([shard]),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lowdensity gather: error: {shard}: images are float32")
    assert lines[0].endswith("snakemake --forcerun sample_gan results/samples/gan/shard_0.npz")


def test_rebuild_hint_knows_the_rules_of_the_pipeline_files():
    """The hint names the rule and the file as a target, so that typed as printed it reruns that
    one job (`--forcerun RULE` alone would rerun every job of the rule and all below)."""
    cell = "results/samples/cells/hardness_a1_b0.npz"
    assert io.rebuild_hint(cell).endswith(f"--forcerun sample_cell {cell}")
    assert io.rebuild_hint("/w/results/metrics/resnet50/reference_neighbours.npz").endswith(
        "--forcerun reference_neighbours results/metrics/resnet50/reference_neighbours.npz"
    )
    assert io.rebuild_hint("elsewhere/x.npz") == "rebuild it with: snakemake --force elsewhere/x.npz"


class RunsCode:
    """A pickle that would call print if unpickled: weights files must never be unpickled that way."""

    def __reduce__(self):
        return (print, ("this must not run",))


@pytest.mark.parametrize("content", ["pickle with code", "random bytes"])
def test_weights_that_cannot_be_unpickled_safely_get_one_line_and_no_unsafe_advice(tmp_path, capsys, content):
    """A hostile or random weights file is refused like a damaged one: one line naming the file, that it is
    not this pipeline's weights file, and the rebuild; PyTorch's advice to pass weights_only=False never shows."""
    path = tmp_path / "results/ddpm/model.pt"
    path.parent.mkdir(parents=True)
    if content == "random bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    else:
        torch.save({"weights": RunsCode()}, path)
    with pytest.raises(ArtifactError) as err:
        io.load_weights(path)
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message
    assert message.startswith(f"weights file {path} cannot be read: it is not a weights file written by this pipeline")
    assert "rebuild it with: snakemake" in message
    assert "this must not run" not in capsys.readouterr().out


@pytest.mark.parametrize("file", ["results/ddpm/model.pt", "results/classifier/gaussians.pt"])
def test_weights_holding_nan_are_refused_naming_the_tensor(tmp_path, file):
    """A diverged network or damaged Gaussians (NaN in `means`) would sample black images: every
    weights file is refused at load when a floating-point tensor holds NaN or ±inf, naming it."""
    path = tmp_path / file
    path.parent.mkdir(parents=True)
    state = {"state_dict": {"conv.weight": torch.zeros(3, 3), "conv.bias": torch.zeros(3)}, "steps": 10}
    if "gaussians" in file:
        state = {"means": torch.zeros(2, 4), "chol": torch.eye(4).repeat(2, 1, 1), "bucket_edges": torch.arange(3)}
        state["means"][1, 2] = float("nan")
        name, rule = "means", "fit_classifier_gaussians"
    else:
        state["state_dict"]["conv.bias"][0] = float("inf")
        name, rule = "state_dict.conv.bias", "train_ddpm"
    torch.save(state, path)
    with pytest.raises(ArtifactError) as err:
        io.load_weights(path)
    message = str(err.value)
    assert message.startswith(f"weights file {path}: tensor {name!r} holds 1 NaN or infinite values of ")
    assert message.endswith(f"snakemake --forcerun {rule} {file}")
    if "gaussians" in file:  # finite again: it loads
        state["means"][1, 2] = 0.0
    else:
        state["state_dict"]["conv.bias"][0] = 0.0
    torch.save(state, path)
    assert io.load_weights(path).keys() == state.keys()


def test_non_finite_images_are_refused_not_written_as_black_pixels():
    """A NaN from the network or the guidance would cast to a valid-looking uint8 pixel; to_uint8 refuses it,
    naming how many images and the first, and finite batches convert as before (rounded, clipped)."""
    from lowdensity.data import NonFiniteSampleError, to_uint8

    x = torch.tensor([[-1.0, 0.0, 1.0, 2.0]]).reshape(1, 1, 2, 2)
    assert to_uint8(x).ravel().tolist() == [0, 128, 255, 255]
    batch = torch.zeros(4, 1, 2, 2)
    batch[2, 0, 1, 1] = float("nan")
    batch[3, 0, 0, 0] = float("inf")
    with pytest.raises(
        NonFiniteSampleError, match=r"2 of 4 images of the batch hold NaN or infinite values \(first: image 2"
    ):
        to_uint8(batch)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("nan_row", r"row 3 holds NaN or infinite values"),
        ("inf_row", r"row 0 holds NaN or infinite values"),
        ("empty", r"no rows"),
        ("width", r"features of width 5, but the reference's have 4"),
        ("labels", r"labels \[37\] that the reference has no images of"),
    ],
)
def test_damaged_features_name_the_file_and_the_rebuild(tmp_path, damage, message):
    """A features file with a NaN row once gave recall 0 and empty medians with exit status 0; an empty one,
    another width or unknown labels ended in raw tracebacks. Each is refused naming the file and its rule."""
    from lowdensity.stages.evaluation import labels_path, load_features

    def save(name, features, labels):
        path = tmp_path / f"results/features/classifier/{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, features.astype(np.float32))
        np.save(labels_path(str(path)), np.asarray(labels, dtype=np.int64))
        return str(path)

    rng = np.random.default_rng(0)
    reference = load_features(save("reference", rng.normal(size=(10, 4)), np.arange(10) % 2))
    features, labels = rng.normal(size=(6, 4)), np.arange(6) % 2
    if damage == "nan_row":
        features[3, 1] = np.nan
    elif damage == "inf_row":
        features[0, 0] = np.inf
    elif damage == "empty":
        features, labels = features[:0], labels[:0]
    elif damage == "width":
        features = rng.normal(size=(6, 5))
    else:
        labels[2] = 37
    path = save("baseline", features, labels)
    with pytest.raises(ArtifactError, match=rf"^{path}: {message}: .*snakemake --forcerun extract_features"):
        load_features(path, like=reference)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("nan_distance", "holds NaN, infinite or negative distances"),
        ("negative_distance", "holds NaN, infinite or negative distances"),
        ("index_out_of_range", r"holds neighbour indices outside the reference's 0 … 9"),
        ("too_few_rows", r"holds \(7, 3\) neighbours, not 10 × ≥ 3"),
    ],
)
def test_damaged_reference_neighbours_name_the_file_and_the_rebuild(tmp_path, damage, message):
    """The precision balls and LOF read the reference's own neighbours: a damaged file would give
    wrong radii (NaN balls hold nothing: recall 0) or an index error; it is refused instead."""
    from lowdensity.stages.evaluation import load_reference_neighbours

    path = tmp_path / "results/metrics/classifier/reference_neighbours.npz"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    distances, indices = np.sort(rng.random((10, 3)), axis=1), rng.integers(0, 10, (10, 3))
    if damage == "nan_distance":
        distances[4, 1] = np.nan
    elif damage == "negative_distance":
        distances[0, 0] = -1.0
    elif damage == "index_out_of_range":
        indices[2, 2] = 10
    else:
        distances, indices = distances[:7], indices[:7]
    np.savez(path, distances=distances, indices=indices)
    reference = {"labels": np.arange(10) % 2}
    with pytest.raises(ArtifactError, match=rf"^{path} {message}.*snakemake --forcerun reference_neighbours"):
        load_reference_neighbours(str(path), reference, 3)
