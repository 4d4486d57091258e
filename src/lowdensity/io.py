"""Reading and writing the pipeline's files.

Writes are atomic: every output is written to a temporary file beside it and renamed into
place, so a crash or a pre-empted job never leaves a half-written file under the final name;
a write that fails (disk full, no permission) says which file and why. Reads of `.npz` files go
through `read_npz`, which names the file, the rule that makes it and how to rebuild it when the
file is missing, truncated or lacks an array.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


class ArtifactError(RuntimeError):
    """A file the pipeline made (or was given) cannot be used; the message says how to fix it."""


class MissingArtifactError(ArtifactError, FileNotFoundError):
    """A file the pipeline needs is not there."""


class OutputWriteError(OSError):
    """An output could not be written."""


# which rule makes a file, by its path under the working directory (most specific first)
PRODUCERS = [
    (r"results/data/(train|val)\.npz$", "prepare_data"),
    (r"results/samples/baseline/shard_\d+\.npz$", "sample_baseline"),
    (r"results/samples/guided/shard_\d+\.npz$", "sample_guided"),
    (r"results/samples/gan/shard_\d+\.npz$", "sample_gan"),
    (r"results/samples/discriminator_pool/shard_\d+\.npz$", "sample_discriminator_pool"),
    (r"results/samples/ddim/baseline_\d+\.npz$", "sample_ddim_baseline"),
    (r"results/samples/ddim/guided_\d+\.npz$", "sample_ddim_guided"),
    (r"results/samples/cells/[^/]+\.npz$", "sample_cell"),
    (r"results/samples/[^/]+\.npz$", "gather_samples"),
    (r"results/features/[^/]+/[^/]+\.npy$", "extract_features"),
    (r"results/metrics/[^/]+/reference_neighbours\.npz$", "reference_neighbours"),
    (r"results/ddpm/(model|checkpoint)\.pt$", "train_ddpm"),
    (r"results/ddpm/snapshots/step_\d+\.pt$", "train_ddpm"),
    (r"results/classifier/gaussians\.pt$", "fit_classifier_gaussians"),
    (r"results/discriminator/gaussians\.pt$", "fit_discriminator_gaussians"),
    (r"results/classifier/(model|checkpoint)\.pt$", "train_classifier"),
    (r"results/discriminator/(model|checkpoint)\.pt$", "train_discriminator"),
    (r"results/gan/(model|checkpoint)\.pt$", "train_gan"),
]


def rebuild_hint(path: str | os.PathLike, rule: str | None = None) -> str:
    """'made by rule R; rebuild it with: snakemake --forcerun R TARGET' (R from the path when not
    given; --force PATH for a file no rule is known to make). TARGET is the file as the run's
    folder names it (from `results/` or `paper_figures/` on), so the command reruns that one job
    rather than every job of R; the next `snakemake` then reruns what depends on it."""
    text = Path(path).as_posix()
    rule = rule or next((r for pattern, r in PRODUCERS if re.search(pattern, text)), None)
    inside_run = re.search(r"(?:^|/)((?:results|paper_figures)/.+)$", text)
    target = inside_run.group(1) if inside_run else text
    if rule:
        return f"it is made by rule {rule}; rebuild it with: snakemake --forcerun {rule} {target}"
    return f"rebuild it with: snakemake --force {target}"


def read_npz(
    path: str | os.PathLike,
    keys: tuple[str, ...] | None = None,
    optional: tuple[str, ...] = (),
    made_by: str | None = None,
) -> dict[str, np.ndarray]:
    """The arrays `keys` (all when None) of an .npz file and those of `optional` it holds, or an
    ArtifactError naming the file, what is wrong and how to rebuild it (`made_by`: the rule that
    makes it, when its path does not tell)."""
    with reading(path, made_by) as hint, np.load(path, allow_pickle=False) as f:
        missing = [k for k in keys or () if k not in f.files]
        if missing:
            raise ArtifactError(
                f"{path} has no array {', '.join(map(repr, missing))} (it holds {', '.join(f.files) or 'none'}): {hint}"
            )
        wanted = f.files if keys is None else [*keys, *(k for k in optional if k in f.files)]
        return {k: f[k] for k in wanted}


@contextmanager
def reading(path: str | os.PathLike, made_by: str | None = None):
    """The block that reads one of the pipeline's files, given the rebuild hint: a missing file,
    or one that fails to parse (truncated, empty, not an archive), becomes an ArtifactError with
    its path, its size and how to rebuild it (`made_by`: the rule that makes it, when its path
    does not tell)."""
    hint = rebuild_hint(path, made_by)
    if not Path(path).exists():
        raise MissingArtifactError(f"{path} not found: {hint}")
    try:
        yield hint
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
        raise ArtifactError(
            f"{path} cannot be read ({Path(path).stat().st_size} bytes; {type(err).__name__}: {err}): the file "
            f"is damaged or truncated; {hint}"
        ) from None


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path in the same folder; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        raise OutputWriteError(f"could not write {path}: {_write_failure(err, path.parent)}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_failure(err: BaseException, folder: Path) -> str:
    """Why a write failed, in words: no space left (with the free space), no permission, or the error."""
    free = shutil.disk_usage(folder).free
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or free < 1 << 20:  # torch.save reports a full disk as 'unexpected pos'
        return f"no space left on the device ({free / 2**20:.1f} MiB free in {folder}; {err})"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write in {folder} ({err})"
    return f"{type(err).__name__}: {err}"


def mmap_npz_member(path: str | os.PathLike, key: str, made_by: str | None = None) -> np.ndarray:
    """Array `key` of an .npz written by `np.savez` (members stored uncompressed), memory-mapped
    read-only in place: its rows are read from disk when used, so a split larger than memory
    can be read in chunks. The file format is the ordinary .npz (np.load reads it whole)."""
    with reading(path, made_by) as hint:
        with zipfile.ZipFile(path) as archive:
            if f"{key}.npy" not in archive.namelist():
                raise ArtifactError(f"{path} has no array {key!r}: {hint}")
            info = archive.getinfo(f"{key}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"member {key}.npy is compressed")
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: name and extra-field lengths at bytes 26–29
            if local[:4] != b"PK\x03\x04":
                raise ValueError("bad local header")
            f.seek(
                info.header_offset
                + 30
                + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little")
            )
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def atomic_savez(path, **arrays) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def atomic_save_npy(path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def read_npy(path: str | os.PathLike, mmap: bool = False, made_by: str | None = None) -> np.ndarray:
    """An .npy array, memory-mapped read-only when `mmap` (its rows are read when used), or an
    ArtifactError naming the file and how to rebuild it."""
    with reading(path, made_by):
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def atomic_torch_save(obj, path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def atomic_to_csv(df, path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def load_weights(path, map_location="cpu") -> dict:
    """torch.load with weights_only=True; a missing or unreadable file says which rule makes it."""
    if not Path(path).exists():
        raise ArtifactError(f"weights file {path} not found: {rebuild_hint(path)}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's own message advises weights_only=False, which would run whatever the file holds: never that
        raise ArtifactError(
            f"weights file {path} cannot be read: it is not a weights file written by this pipeline (it is "
            f"damaged, or holds objects other than tensors, which are never unpickled): {rebuild_hint(path)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ArtifactError(
            f"weights file {path} cannot be read ({type(err).__name__}: {reason}): {rebuild_hint(path)}"
        ) from None
    damaged = next(non_finite_tensors(state), None)
    if damaged is not None:
        name, count, size = damaged
        raise ArtifactError(
            f"weights file {path}: tensor {name!r} holds {count} NaN or infinite values of {size} "
            f"(a diverged or damaged network): {rebuild_hint(path)}"
        )
    return state


def non_finite_tensors(value, name: str = ""):
    """(key path, non-finite count, size) of every floating-point tensor in a loaded weights file
    (dicts and lists walked) that holds NaN or ±inf."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                yield name, bad, value.numel()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from non_finite_tensors(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from non_finite_tensors(item, f"{name}[{index}]")
