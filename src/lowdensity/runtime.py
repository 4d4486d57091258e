"""Where a stage runs: its device, the precision its networks run in, and a one-line description
of it for the outputs' metadata."""

import logging
import platform

import torch


def select_device(name: str = "auto") -> torch.device:
    """The device a stage runs on ('auto': CUDA when present). Logs it with torch's CPU thread
    count, which follows the rule's `threads` (Snakemake exports OMP_NUM_THREADS to each job)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    logging.getLogger("lowdensity").info("device %s, torch threads %d", device, torch.get_num_threads())
    return device


def device_description(device: torch.device) -> str:
    """The GPU's model, or the CPU's architecture and torch's thread count (Table 1's device column)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 products run on bf16 hardware on `device`: a CUDA GPU that supports them, or
    a CPU with AVX-512 BF16 or AMX (elsewhere autocast emulates bf16, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision networks run in: 'fp32', 'bf16', or for 'auto' bf16 where `device` has bf16
    hardware (`native_bf16`) and fp32 elsewhere, decided when the stage starts."""
    if precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', not {precision!r}")
    if precision != "auto":
        return precision
    resolved = "bf16" if native_bf16(device) else "fp32"
    logging.getLogger("lowdensity").info("precision auto: %s on %s", resolved, device)
    return resolved


def with_precision(section: dict, device: torch.device) -> dict:
    """A copy of a config section with its `precision` resolved on `device` (absent: fp32), so that
    a run's fingerprint names what it computed in: a checkpoint written in bf16 is not resumed in
    fp32."""
    return {**section, "precision": resolve_precision(section.get("precision", "fp32"), device)}
