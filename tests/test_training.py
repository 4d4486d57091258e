import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_unet

from lowdensity.core.training import NonFiniteLossError, fingerprint, learning_rate, train, trajectory_config
from lowdensity.data import Split, save_split
from lowdensity.networks.ddpm import ddpm_losses, load_ddpm, training_diffusion
from lowdensity.stages.ddpm import train_ddpm

DIFFUSION = {"num_steps": 100, "schedule": "linear", "variance": "fixed_small"}
MODEL = {
    "channels": 16,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
    "dropout": 0.1,
    "num_heads": 1,
    "scale_shift": True,
    "class_conditional": True,
}


def train_cfg(**kw):
    cfg = {
        "steps": 12,
        "batch_size": 8,
        "lr": 2e-3,
        "weight_decay": 0.0,
        "warmup_steps": 2,
        "ema_decay": 0.9,
        "grad_clip": 1.0,
        "random_flip": True,
        "checkpoint_every": 5,
        "log_every": 2,
        "seed": 3,
    }
    cfg.update(kw)
    return cfg


def handful_of_images(n=8, size=8):
    rng = np.random.default_rng(0)
    base = np.zeros((n, 1, size, size), dtype=np.uint8)
    for i in range(n):  # bright squares at different places: an easy distribution
        r, c = rng.integers(0, size - 3, 2)
        base[i, 0, r : r + 3, c : c + 3] = 255
    return Split(base, np.arange(n) % 2, ("a", "b"))


def make_model_and_losses(split):
    torch.manual_seed(0)
    model = small_unet(dropout=0.1, num_classes=2)
    compute = ddpm_losses(
        training_diffusion(DIFFUSION),
        torch.from_numpy(split.images),
        torch.from_numpy(split.labels),
        8,
        torch.device("cpu"),
        True,
    )
    return model, compute


def test_loss_falls_on_a_handful_of_images(tmp_path):
    split = handful_of_images()
    model, compute = make_model_and_losses(split)
    _, history = train(
        model,
        compute,
        train_cfg(steps=150, log_every=10, checkpoint_every=1000),
        tmp_path / "ck.pt",
        "x",
        torch.device("cpu"),
    )
    losses = [row["loss"] for row in history]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2])


def weights_after(tmp_path, name, runs, **cfg):
    """Train in successive runs of the given lengths from one checkpoint file; return the weights."""
    split = handful_of_images()
    for steps in runs:
        model, compute = make_model_and_losses(split)
        config = train_cfg(steps=steps, **cfg)
        ema, history = train(
            model, compute, config, tmp_path / f"{name}.pt", fingerprint(trajectory_config(config)), torch.device("cpu")
        )
    state = torch.load(tmp_path / f"{name}.pt", weights_only=True)
    return state["model"], ema.state_dict(), history


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_continues_exactly_as_uninterrupted(tmp_path):
    full_model, full_ema, full_hist = weights_after(tmp_path, "full", [12])
    resumed_model, resumed_ema, resumed_hist = weights_after(tmp_path, "resumed", [7, 12])
    assert_same_state(full_model, resumed_model)
    assert_same_state(full_ema, resumed_ema)

    # the first, shorter run also logged its own last step (7), so row 8 averages one step
    # instead of two; every other row agrees
    def rows(history):
        return [row for row in history if row["step"] not in (7, 8)]

    assert rows(full_hist) == rows(resumed_hist)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_killed_run_resumes_from_last_checkpoint(tmp_path, schedule):
    split = handful_of_images()
    model, compute = make_model_and_losses(split)
    calls = {"n": 0}

    def dies_at_step_8(m, g):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt("pre-empted")
        return compute(m, g)

    with pytest.raises(KeyboardInterrupt):
        train(
            model, dies_at_step_8, train_cfg(lr_schedule=schedule), tmp_path / "killed.pt", "run", torch.device("cpu")
        )
    assert torch.load(tmp_path / "killed.pt", weights_only=True)["step"] == 5
    model, compute = make_model_and_losses(split)
    train(model, compute, train_cfg(lr_schedule=schedule), tmp_path / "killed.pt", "run", torch.device("cpu"))
    full_model, _, _ = weights_after(tmp_path, "full", [12], lr_schedule=schedule)
    assert_same_state(torch.load(tmp_path / "killed.pt", weights_only=True)["model"], full_model)


def test_learning_rate_schedules_follow_their_closed_forms():
    base, warmup, steps = 2e-3, 10, 110  # 100 steps after the warm-up
    for schedule in ("constant", "linear", "cosine"):
        assert [learning_rate(base, s, steps, warmup, schedule) for s in range(warmup)] == pytest.approx(
            [base * (s + 1) / warmup for s in range(warmup)]
        )
    assert {learning_rate(base, s, steps, warmup, "constant") for s in range(warmup - 1, steps)} == {base}
    for step in range(warmup, steps):
        u = (step - warmup) / (steps - warmup)
        assert learning_rate(base, step, steps, warmup, "linear") == pytest.approx(base * (1 - u))
        assert learning_rate(base, step, steps, warmup, "cosine") == pytest.approx(
            base * (1 + math.cos(math.pi * u)) / 2
        )
    # the first step after the warm-up trains at the full rate, the last one at a small positive rate
    assert learning_rate(base, warmup, steps, warmup, "linear") == base
    assert learning_rate(base, steps - 1, steps, warmup, "linear") == pytest.approx(base / 100)
    assert learning_rate(base, 60, steps, warmup, "cosine") == pytest.approx(base / 2)
    assert learning_rate(base, 0, 4, 0, "linear") == base  # no warm-up
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(base, 0, steps, warmup, "step")


def test_a_decaying_rate_makes_the_length_part_of_the_runs_identity():
    """With a constant rate a longer run continues a shorter one; with a decaying one every step's
    rate depends on the length, so the fingerprinted keys keep `steps`."""
    constant, decaying = train_cfg(), train_cfg(lr_schedule="linear")
    assert "steps" not in trajectory_config(constant) and "steps" in trajectory_config(decaying)
    assert trajectory_config(constant) == trajectory_config(train_cfg(steps=99))
    assert trajectory_config(decaying) != trajectory_config(train_cfg(steps=99, lr_schedule="linear"))
    assert "checkpoint_every" not in trajectory_config(decaying) and "log_every" not in trajectory_config(decaying)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_decaying_run_logs_the_rates_of_its_schedule(tmp_path, schedule):
    model, compute = make_model_and_losses(handful_of_images())
    _, history = train(
        model, compute, train_cfg(lr_schedule=schedule, log_every=1), tmp_path / "ck.pt", "run", torch.device("cpu")
    )
    assert [row["lr"] for row in history] == pytest.approx([learning_rate(2e-3, s, 12, 2, schedule) for s in range(12)])


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    split = handful_of_images()
    model, compute = make_model_and_losses(split)
    train(model, compute, train_cfg(steps=5), tmp_path / "ck.pt", "first", torch.device("cpu"))
    model, compute = make_model_and_losses(split)
    _, history = train(model, compute, train_cfg(steps=6), tmp_path / "ck.pt", "second", torch.device("cpu"))
    assert history[0]["step"] == 2  # started from scratch


def test_nan_loss_stops_with_the_step_number(tmp_path):
    split = handful_of_images()
    model, compute = make_model_and_losses(split)
    calls = {"n": 0}

    def nan_at_step_3(m, g):
        out = compute(m, g)
        calls["n"] += 1
        if calls["n"] == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(model, nan_at_step_3, train_cfg(), tmp_path / "nan.pt", "run", torch.device("cpu"))


def test_train_ddpm_writes_model_and_loss_log(tmp_path):
    save_split(handful_of_images(), tmp_path / "train.npz")
    run = run_ddpm(tmp_path, "run", ddpm_params(steps=4))
    model, meta = load_ddpm(str(run / "model.pt"), torch.device("cpu"))
    assert meta["steps"] == 4 and meta["class_names"] == ["a", "b"] and meta["diffusion"] == DIFFUSION
    assert not model.training
    log = pd.read_csv(run / "loss.csv")
    assert log["step"].tolist() == [2, 4] and {"loss", "mse", "lr", "grad_norm"} <= set(log.columns)


def ddpm_params(**train) -> dict:
    return {"ddpm": {"model": MODEL, "train": train_cfg(**train)}, "diffusion": DIFFUSION}


def run_ddpm(tmp_path, name, params) -> Path:
    """`train_ddpm` on tmp_path/train.npz, its files in tmp_path/name."""
    folder = tmp_path / name
    train_ddpm(
        params=params,
        data=str(tmp_path / "train.npz"),
        model=str(folder / "model.pt"),
        loss_csv=str(folder / "loss.csv"),
        checkpoint=str(folder / "ck.pt"),
        snapshots=str(folder / "snapshots"),
        device="cpu",
    )
    return folder


def test_an_ema_snapshot_is_the_model_a_run_stopped_there_writes(tmp_path):
    """The quality ladder without extra training: the snapshot at step 5 of a 12-step run holds
    bit for bit the file a 5-step run writes (weights, architecture, steps), also when the long
    run was interrupted after the snapshot and resumed from its checkpoint."""
    save_split(handful_of_images(), tmp_path / "train.npz")
    long = run_ddpm(tmp_path, "long", ddpm_params(steps=12, snapshots=[5, 9]))
    short = run_ddpm(tmp_path, "short", ddpm_params(steps=5))
    snapshot = torch.load(long / "snapshots" / "step_5.pt", weights_only=True)
    reference = torch.load(short / "model.pt", weights_only=True)
    assert snapshot.keys() == reference.keys() and snapshot["steps"] == 5
    assert_same_state(snapshot["state_dict"], reference["state_dict"])
    assert {k: v for k, v in snapshot.items() if k != "state_dict"} == {
        k: v for k, v in reference.items() if k != "state_dict"
    }
    # interrupted at step 10 (its checkpoint every 5): the resumed run still writes both snapshots
    resumed = tmp_path / "resumed"
    run_ddpm(tmp_path, "resumed", ddpm_params(steps=10, snapshots=[5, 9]))
    (resumed / "snapshots" / "step_5.pt").unlink()  # as Snakemake removes an incomplete job's outputs
    run_ddpm(tmp_path, "resumed", ddpm_params(steps=12, snapshots=[5, 9]))
    for step in (5, 9):
        a = torch.load(resumed / "snapshots" / f"step_{step}.pt", weights_only=True)["state_dict"]
        assert_same_state(a, torch.load(long / "snapshots" / f"step_{step}.pt", weights_only=True)["state_dict"])
    assert_same_state(
        torch.load(resumed / "model.pt", weights_only=True)["state_dict"],
        torch.load(long / "model.pt", weights_only=True)["state_dict"],
    )


def test_two_data_parallel_processes_follow_the_single_process_run(tmp_path):
    """`train-ddpm --gpus 2`: 2 gloo ranks under torchrun on the CPU (a 2-GPU job uses NCCL): each rank trains
    on its half of every batch and DistributedDataParallel averages the gradients, so the
    weights follow one process training on whole batches (up to summation order)."""
    import os
    import subprocess

    save_split(handful_of_images(16), str(tmp_path / "train.npz"))
    params = {
        "ddpm": {"model": {**MODEL, "dropout": 0.0}, "train": train_cfg(steps=6, batch_size=8)},
        "diffusion": DIFFUSION,
    }
    one, two = run_ddpm(tmp_path, "one", params), tmp_path / "two"
    # what the rule runs when resources.train_ddpm.gpu = 2: the command re-executes itself under torchrun
    cmd = train_command(tmp_path, params, two, gpus=2)
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (one, two))
    assert a.keys() == b.keys()
    diff = torch.cat([(b[k].float() - a[k].float()).abs().ravel() for k in a])
    # float32 sums in another order: tiny differences, except that Adam turns a few near-zero
    # gradients into steps of up to lr = 2e-3 whatever their size
    assert diff.max() < 0.1 * params["ddpm"]["train"]["lr"] and diff.median() < 1e-6, (diff.max(), diff.median())
    np.testing.assert_allclose(pd.read_csv(two / "loss.csv")["loss"], pd.read_csv(one / "loss.csv")["loss"], rtol=1e-4)
    assert "data-parallel over 2 ranks (gloo)" in result.stderr


def assert_ends_like_an_uninterrupted_run(tmp_path, params, folder):
    """The weights a run resumed in `folder` ends with are those of one run never interrupted."""
    whole = run_ddpm(tmp_path, "whole", params)
    assert_same_state(
        torch.load(folder / "model.pt", weights_only=True)["state_dict"],
        torch.load(whole / "model.pt", weights_only=True)["state_dict"],
    )


def train_command(tmp_path, params, folder, gpus: int = 1) -> list[str]:
    """`lowdensity train-ddpm` as its rule runs it, in a fresh interpreter (`--gpus` when > 1)."""
    import json
    import sys

    launcher = ["--gpus", str(gpus)] if gpus > 1 else []
    cmd = [sys.executable, "-m", "lowdensity.cli", *launcher, "train-ddpm", "--params", json.dumps(params)]
    cmd += ["--data", str(tmp_path / "train.npz"), "--model", str(folder / "model.pt"), "--loss_csv"]
    return cmd + [str(folder / "loss.csv"), "--checkpoint", str(folder / "ck.pt"), "--device", "cpu"]


def test_a_killed_training_job_rerun_ends_with_the_uninterrupted_weights(tmp_path):
    """What a pre-empted SLURM job does: the training process is SIGKILLed mid-run (after its
    first checkpoint), the job is run again with the same command, and the final weights equal
    those of a run that was never interrupted."""
    import signal
    import subprocess
    import time

    save_split(handful_of_images(16), str(tmp_path / "train.npz"))
    params = {
        "ddpm": {"model": MODEL, "train": train_cfg(steps=200, checkpoint_every=20, log_every=20)},
        "diffusion": DIFFUSION,
    }
    killed = tmp_path / "killed"
    cmd = train_command(tmp_path, params, killed)
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "ck.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    assert job.poll() is None, "training finished before it could be killed"
    job.send_signal(signal.SIGKILL)
    job.wait()
    step = torch.load(killed / "ck.pt", weights_only=True)["step"]
    assert 0 < step < 200 and not (killed / "model.pt").exists()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)  # the retry resumes from the checkpoint
    assert_ends_like_an_uninterrupted_run(tmp_path, params, killed)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_training_saves_its_step_and_stops_promptly(tmp_path, signal_name):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM: the training process finishes the step under way,
    checkpoints it (between the periodic checkpoints) and exits at once with one line saying so;
    the same command then resumes and ends with the weights of a run never interrupted."""
    import signal
    import subprocess
    import time

    save_split(handful_of_images(16), str(tmp_path / "train.npz"))
    params = {
        "ddpm": {"model": MODEL, "train": train_cfg(steps=400, checkpoint_every=1000, log_every=20)},
        "diffusion": DIFFUSION,
    }
    run = tmp_path / "run"
    cmd = train_command(tmp_path, params, run)
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    for line in job.stderr:  # tqdm's first report: the loop is running
        if "train_ddpm:" in line or time.time() > deadline:
            break
    time.sleep(1.0)
    sent = time.time()
    job.send_signal(getattr(signal, signal_name))
    stderr = job.stderr.read()
    assert job.wait(timeout=60) == 1 and time.time() - sent < 20, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("lowdensity train-ddpm: error")]
    assert len(lines) == 1 and f"stopped by {signal_name} after step" in lines[0], stderr[-2000:]
    step = torch.load(run / "ck.pt", weights_only=True)["step"]
    assert 0 < step < 400 and not (run / "model.pt").exists()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    assert_ends_like_an_uninterrupted_run(tmp_path, params, run)


def test_a_shorter_run_does_not_return_the_longer_runs_weights(tmp_path, caplog):
    """Lowering `steps` after a longer run: the step-12 checkpoint is not returned as the 8-step
    run; training starts afresh and ends equal to a fresh 8-step run (weights and loss log)."""
    fresh_model, fresh_ema, fresh_history = weights_after(tmp_path, "fresh", [8])
    longer_model, _, _ = weights_after(tmp_path, "shortened", [12])
    model, ema, history = weights_after(tmp_path, "shortened", [8])
    assert "past the configured 8 steps" in caplog.text
    assert_same_state(model, fresh_model)
    assert_same_state(ema, fresh_ema)
    assert history == fresh_history and history[-1]["step"] == 8
    assert not all(torch.equal(model[k], longer_model[k]) for k in model)


def test_a_reconfigured_run_keeps_the_previous_checkpoint_and_reverting_restores_it(tmp_path, caplog):
    """Snakemake deletes a model before its job reruns; if the new configuration then fails, the
    previous one's final checkpoint is still there: reverting resumes from it at its last step and
    gives back that model bit for bit, with no step trained."""
    first_model, first_ema, first_history = weights_after(tmp_path, "run", [8])
    weights_after(tmp_path, "run", [3], lr=1e-4)  # another configuration, stopped early
    kept = list(tmp_path.glob("run.pt.*"))
    assert len(kept) == 1 and "kept as" in caplog.text and str(kept[0]) in caplog.text
    caplog.clear()
    model, ema, history = weights_after(tmp_path, "run", [8])  # the first configuration again
    assert f"resuming from {kept[0]} at step 8" in caplog.text
    assert_same_state(model, first_model)
    assert_same_state(ema, first_ema)
    assert history == first_history
    # the kept file became the checkpoint again; the second configuration's is now the one kept
    assert [p.name for p in tmp_path.glob("run.pt.*")] != [kept[0].name] and len(list(tmp_path.glob("run.pt.*"))) == 1


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_an_unreadable_checkpoint_is_moved_aside_and_training_restarts(tmp_path, caplog, damage):
    """A truncated or empty checkpoint does not stop the rule: it is moved aside (named in the log)
    and training restarts, ending equal to an uninterrupted run."""
    uninterrupted_model, uninterrupted_ema, _ = weights_after(tmp_path, "whole", [12])
    weights_after(tmp_path, "damaged", [5])
    path = tmp_path / "damaged.pt"
    path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"")
    model, ema, history = weights_after(tmp_path, "damaged", [12])
    aside = list(tmp_path.glob("damaged.pt.unreadable-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == (100 if damage == "truncated" else 0)
    assert f"the checkpoint {path} cannot be read" in caplog.text and str(aside[0]) in caplog.text
    assert_same_state(model, uninterrupted_model)
    assert_same_state(ema, uninterrupted_ema)


def test_bf16_and_channels_last_training_follow_fp32(tmp_path):
    """bf16 autocast (products and convolutions in bfloat16) and channels-last weights train the
    same model to the same loss: the mean of the last 40 steps within 10% of fp32's (the tolerance:
    bf16 keeps 8 bits of mantissa, and the losses' step-to-step spread here is larger than that),
    while fp32 itself stays bit-for-bit reproducible."""
    split = handful_of_images()

    def run(name, **kw):
        model, compute = make_model_and_losses(split)
        ema, history = train(
            model,
            compute,
            train_cfg(steps=160, log_every=40, checkpoint_every=1000, **kw),
            tmp_path / f"{name}.pt",
            "run",
            torch.device("cpu"),
        )
        return ema.state_dict(), np.array([row["loss"] for row in history])

    fp32_state, fp32 = run("fp32")
    again_state, again = run("fp32_again")
    assert_same_state(fp32_state, again_state)
    np.testing.assert_array_equal(fp32, again)
    for name, kw in [("bf16", {"precision": "bf16"}), ("channels_last", {"channels_last": True})]:
        _, losses = run(name, **kw)
        assert losses[-1] == pytest.approx(fp32[-1], rel=0.10), name
        assert losses[-1] < 0.6 * losses[0], name


@pytest.mark.parametrize("hardware, resolved", [(False, "fp32"), (True, "bf16")])
def test_auto_precision_is_the_hardwares_choice_bit_for_bit(tmp_path, monkeypatch, hardware, resolved):
    """precision auto is bf16 on a CPU with bf16 instructions and fp32 on one without (decided when
    the job starts): the model it trains equals, bit for bit, the run that names that precision,
    and its file says which it was."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: hardware)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    save_split(handful_of_images(), tmp_path / "train.npz")
    auto = torch.load(run_ddpm(tmp_path, "auto", ddpm_params(precision="auto")) / "model.pt", weights_only=True)
    named = torch.load(run_ddpm(tmp_path, "named", ddpm_params(precision=resolved)) / "model.pt", weights_only=True)
    assert auto["precision"] == named["precision"] == resolved
    assert_same_state(auto["state_dict"], named["state_dict"])


def test_a_checkpoint_is_resumed_only_in_its_own_precision(tmp_path, monkeypatch, caplog):
    """A run interrupted in bf16 and rerun on a machine where auto means fp32 starts afresh (its
    fingerprint names the resolved precision) and ends with the fp32 run's weights."""
    save_split(handful_of_images(), tmp_path / "train.npz")
    run_ddpm(tmp_path, "run", ddpm_params(steps=5, precision="bf16"))
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with caplog.at_level("INFO"):
        moved = torch.load(run_ddpm(tmp_path, "run", ddpm_params(precision="auto")) / "model.pt", weights_only=True)
    assert "training this configuration from the start" in caplog.text
    fp32 = torch.load(run_ddpm(tmp_path, "fp32", ddpm_params(precision="fp32")) / "model.pt", weights_only=True)
    assert moved["precision"] == "fp32"
    assert_same_state(moved["state_dict"], fp32["state_dict"])


def test_an_unknown_precision_is_refused_by_name():
    from lowdensity.runtime import resolve_precision

    with pytest.raises(ValueError, match="'fp16'"):
        resolve_precision("fp16", torch.device("cpu"))
