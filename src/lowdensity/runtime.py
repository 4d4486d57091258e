"""Where a stage runs: its device and a one-line description of it for the outputs' metadata."""

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
