"""A resumable, deterministic training loop shared by every network of the pipeline.

- Step s draws all its randomness (batch indices, timesteps, noise, dropout) from a
  generator seeded by (seed, s), so training that resumes from a checkpoint continues
  exactly as an uninterrupted run would (same weights after N steps).
- Checkpoints (weights, EMA weights, optimiser, step, loss log) are written atomically
  every `checkpoint_every` steps and at the end; a rerun resumes from the last one if its
  fingerprint (everything that shapes the run except its length, which a decaying learning
  rate makes part of it) matches.
- AdamW with linear warm-up, then a constant learning rate or one that decays to zero at the
  last step (`lr_schedule`: linear or cosine), gradient clipping, EMA of the weights.
- A non-finite loss stops the run with the step number.
- Data-parallel across GPUs within one job when launched by `torchrun` (the rules do so when
  the stage's `resources` ask for gpu > 1): every rank draws the step's whole batch from the
  same generator and trains on its own contiguous share (`local_part`); DistributedDataParallel
  averages the gradients, so N ranks follow the single-process run (up to summation order).
  Rank 0 writes checkpoints and outputs. NCCL on GPUs, gloo on CPUs (how the tests run it).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from lowdensity.io import atomic_torch_save
from lowdensity.runtime import resolve_precision

log = logging.getLogger(__name__)

RUN_LENGTH_KEYS = ("steps", "checkpoint_every", "log_every", "snapshots")
LR_SCHEDULES = ("constant", "linear", "cosine")


def learning_rate(base: float, step: int, steps: int, warmup: int = 0, schedule: str = "constant") -> float:
    """The learning rate of 0-based `step` of `steps`: linear warm-up to `base` over `warmup` steps,
    then `base` (constant) or a decay from `base` at the first step after the warm-up towards zero
    one step after the last (linear: base · (1 − u); cosine: base · (1 + cos πu) / 2, with u the
    fraction of the post-warm-up steps already taken), so no step trains at zero."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {schedule!r}")
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    done = (step - warmup) / max(steps - warmup, 1)
    return base * (1.0 - done) if schedule == "linear" else base * 0.5 * (1.0 + math.cos(math.pi * done))


def trajectory_config(train_cfg: dict, extra_length_keys: tuple = ()) -> dict:
    """The training keys that shape a run's trajectory, for its fingerprint: all but its length, so
    that a longer run resumes from a shorter one's checkpoint; with a decaying learning rate the
    length shapes every step, so `steps` stays in."""
    decaying = train_cfg.get("lr_schedule", "constant") != "constant"
    length_keys = {k for k in RUN_LENGTH_KEYS if not (decaying and k == "steps")} | set(extra_length_keys)
    return {k: v for k, v in train_cfg.items() if k not in length_keys}


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for one training step, independent across (seed, step) pairs."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]) >> 1


def fingerprint(*parts) -> str:
    """Hash of the JSON-serialisable description of a run (config sections, data digest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


class NonFiniteLossError(FloatingPointError):
    pass


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM arrived: the step under way was finished and checkpointed."""


class StopRequest:
    """SIGINT and SIGTERM, while active, set a flag instead of killing the process, so that the
    training loop can finish its step, write a checkpoint and stop; the previous handlers come back
    afterwards. Outside the main thread (where handlers cannot be set) it never fires."""

    def __init__(self):
        self.signal: int | None = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self.previous[number] = signal.signal(number, self.handle)
        return self

    def handle(self, number, frame) -> None:
        self.signal = number

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def compute_precision(device: torch.device, precision: str = "fp32"):
    """The context networks run in: bf16 autocast on `device` ('bf16': matrix products and
    convolutions in bfloat16, reductions and the losses in float32), none ('fp32'), or for 'auto'
    whichever of the two `device` has hardware for (`runtime.resolve_precision`)."""
    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def memory_format(model: torch.nn.Module, channels_last: bool = False) -> torch.nn.Module:
    """The network with its 4-D weights in channels-last layout (NHWC convolutions) when asked."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def kept_checkpoint(checkpoint_path: Path, run_fingerprint: str) -> Path:
    """Where a differently configured run's checkpoint is kept: `checkpoint.pt.<fingerprint>`."""
    return checkpoint_path.with_name(f"{checkpoint_path.name}.{run_fingerprint}")


def resume_state(checkpoint_path: Path, run_fingerprint: str, steps: int, device, desc: str) -> dict | None:
    """The checkpoint to resume from: one that belongs to this run (same fingerprint) and is not
    past its configured end. A checkpoint of a longer run is not cut back, since its weights are
    not those of the shorter one: training starts afresh. A checkpoint that cannot be read
    (truncated, empty) is moved aside, named in the log, and training starts afresh.

    A checkpoint of a differently configured run is kept, not overwritten, as
    `kept_checkpoint(path, its fingerprint)` (one such file: an older one is deleted), since
    Snakemake deletes that run's model before a new job starts: reverting the configuration then
    resumes from it — at its last step, the model is back without training."""
    state = _read_checkpoint(checkpoint_path, desc)
    if state is not None and state["fingerprint"] != run_fingerprint:
        kept = kept_checkpoint(checkpoint_path, state["fingerprint"])
        if is_main_process():  # one rank moves files; the others only read
            for older in checkpoint_path.parent.glob(f"{checkpoint_path.name}.{'[0-9a-f]' * 16}"):
                if older != kept_checkpoint(checkpoint_path, run_fingerprint):
                    older.unlink(missing_ok=True)
            os.replace(checkpoint_path, kept)
        log.warning(
            "%s: %s belongs to a differently configured run: kept as %s (reverting the configuration "
            "resumes from it); training this configuration from the start",
            desc,
            checkpoint_path,
            kept,
        )
        state = None
    if state is None:
        state = _read_checkpoint(kept_checkpoint(checkpoint_path, run_fingerprint), desc)
    if state is None:
        return None
    if state["step"] > steps:
        log.warning(
            "%s: ignoring the checkpoint at step %d, past the configured %d steps; training from the start",
            desc,
            state["step"],
            steps,
        )
        return None
    log.warning("%s: resuming from %s at step %d", desc, state["path"], state["step"])
    return state


def _read_checkpoint(path: Path, desc: str) -> dict | None:
    """The checkpoint at `path` (with its `path`), None if there is none; an unreadable one is moved
    to `<name>.unreadable-<time>` and named in the log."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["step"] = int(state["step"])
        state["fingerprint"] = str(state["fingerprint"])
    except FileNotFoundError:  # another data-parallel rank moved it
        return None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as err:
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another data-parallel rank moved it first
            pass
        log.warning(
            "%s: the checkpoint %s cannot be read (%s: %s); moved it to %s and training from the start",
            desc,
            path,
            type(err).__name__,
            err,
            aside,
        )
        return None
    return {**state, "path": path}


def world() -> tuple[int, int]:
    """(rank, number of ranks) of this process: (0, 1) unless it joined a torchrun group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return world()[0] == 0


def join_world(device: torch.device) -> torch.device:
    """Under torchrun (WORLD_SIZE > 1) join the process group — NCCL with one GPU per rank
    (LOCAL_RANK), gloo on CPUs — and return this rank's device; otherwise `device`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def local_part(*batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous share of tensors drawn for the whole batch (all of them on one process)."""
    rank, size = world()
    if size == 1:
        return batch
    n = len(batch[0])
    if n % size:
        raise ValueError(f"batch_size {n} must be divisible by the {size} data-parallel ranks")
    return tuple(x[rank * n // size : (rank + 1) * n // size] for x in batch)


def train(
    model: torch.nn.Module,
    compute_losses: Callable[[torch.nn.Module, torch.Generator], dict],
    train_cfg: dict,
    checkpoint_path: str | Path,
    run_fingerprint: str,
    device: torch.device,
    desc: str = "training",
    on_snapshot: Callable[[int, dict], None] | None = None,
) -> tuple[torch.nn.Module, list[dict]]:
    """Train `model` for train_cfg['steps'] steps and return (EMA model, loss log).

    `compute_losses(model, generator)` draws a batch with `generator` and returns a dict
    of scalar tensors with key 'loss' (the one optimised); the others are logged.

    train_cfg['snapshots'] lists steps whose EMA weights are kept (in the checkpoint, so that a
    resumed run still has them) and handed to `on_snapshot(step, state_dict)` at the end. With a
    constant learning rate after the warm-up, the snapshot at step N is bit for bit the EMA a run
    of N steps ends with (the steps' batches and noise depend on the seed and the step only).
    """
    seed = int(train_cfg["seed"])
    steps = int(train_cfg["steps"])
    model = memory_format(model.to(device), train_cfg.get("channels_last", False))
    precision = resolve_precision(train_cfg.get("precision", "fp32"), device)  # once, not at every step
    ema = copy.deepcopy(model).requires_grad_(False)
    rank, ranks = world()
    net = model
    if ranks > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        if rank == 0:
            log.warning("%s: data-parallel over %d ranks (%s)", desc, ranks, dist.get_backend())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg.get("weight_decay", 0.0)
    )
    start, history, pending = 0, [], {}
    snapshot_steps = sorted({int(n) for n in train_cfg.get("snapshots") or ()})
    if any(not 0 < n <= steps for n in snapshot_steps):
        raise ValueError(f"{desc}: snapshot steps {snapshot_steps} must lie in 1 … {steps}")
    snapshots: dict[int, dict] = {}

    checkpoint_path = Path(checkpoint_path)
    state = resume_state(checkpoint_path, run_fingerprint, steps, device, desc)
    if state:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start, history, pending = int(state["step"]), list(state["history"]), dict(state["pending"])
        snapshots = {int(n): weights for n, weights in state.get("snapshots", {}).items()}
        lost = [n for n in snapshot_steps if n <= start and n not in snapshots]
        if lost:
            raise ValueError(
                f"{desc}: the checkpoint {checkpoint_path} is past step {start} but kept no EMA snapshot at "
                f"{lost} (it was written before those snapshots were configured): delete it to train afresh"
            )

    def save(step: int) -> None:
        if rank:
            return
        atomic_torch_save(
            {
                "fingerprint": run_fingerprint,
                "step": step,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
                "pending": pending,
                **({"snapshots": {str(n): weights for n, weights in snapshots.items()}} if snapshot_steps else {}),
            },
            checkpoint_path,
        )
        kept_checkpoint(checkpoint_path, run_fingerprint).unlink(missing_ok=True)  # superseded

    warmup = int(train_cfg.get("warmup_steps", 0))
    schedule = train_cfg.get("lr_schedule", "constant")
    log_every = int(train_cfg.get("log_every", 50))
    checkpoint_every = int(train_cfg.get("checkpoint_every", 500))
    grad_clip = train_cfg.get("grad_clip")
    ema_decay = float(train_cfg.get("ema_decay", 0.0))
    model.train()
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, mininterval=10, disable=rank > 0)
    with StopRequest() as stop:
        for step in bar:
            lr = learning_rate(train_cfg["lr"], step, steps, warmup, schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = torch.Generator().manual_seed(step_seed(seed, step))
            torch.manual_seed(step_seed(seed + 1, step))  # dropout
            with compute_precision(device, precision):
                losses = compute_losses(net, generator)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{desc}: loss is {loss.item()} at step {step}; stopping. {checkpoint_path} holds this run's "
                    "last checkpointed step; a previous configuration's run, if one finished here, is kept "
                    f"beside it as {checkpoint_path.name}.<fingerprint>: reverting the configuration and "
                    "rerunning gives its model back without training"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip else float("inf"))
            optimizer.step()
            ema_update(ema, model, ema_decay)
            if step + 1 in snapshot_steps:
                snapshots[step + 1] = {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}
            logged = torch.stack([v.detach().float() for v in losses.values()])
            if ranks > 1:  # log the mean over ranks, as one process would
                dist.all_reduce(logged)
                logged /= ranks
            for key, value in zip(losses, logged.tolist()):
                pending.setdefault(key, []).append(value)
            pending.setdefault("grad_norm", []).append(float(grad_norm))
            if (step + 1) % log_every == 0 or step + 1 == steps:
                row = {"step": step + 1, "lr": lr, **{k: float(np.mean(v)) for k, v in pending.items()}}
                history.append(row)
                pending = {}
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                save(step + 1)
            stopped = stop.signal is not None
            if ranks > 1:  # every rank stops after the same step
                flags = torch.tensor(float(stopped), device=device)
                dist.all_reduce(flags)
                stopped = bool(flags.item())
            if stopped and step + 1 < steps:
                save(step + 1)
                name = signal.Signals(stop.signal).name if stop.signal else "a signal on another rank"
                raise TrainingInterrupted(
                    f"{desc}: stopped by {name} after step {step + 1} of {steps}; its checkpoint {checkpoint_path} "
                    "is saved, and the same command (snakemake --rerun-incomplete) resumes from it"
                )
    if start < steps or not checkpoint_path.exists():
        save(steps)
    if on_snapshot is not None and rank == 0:
        for n in snapshot_steps:
            on_snapshot(n, snapshots[n])
    if ranks > 1:
        dist.barrier()
    ema.eval()
    return ema, history
