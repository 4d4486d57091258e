"""Which steps of the T-step chain a respaced sampler keeps (improved-diffusion's respacing).

Pure Python, without torch: the configuration check (`config.related_key_problems`), which
every Snakemake invocation runs, validates a respacing with it.
"""

from __future__ import annotations


def space_timesteps(num_timesteps: int, section_counts) -> list[int]:
    """Which original steps to keep (improved-diffusion's `space_timesteps`).

    `section_counts` is an int or a comma string of ints (the original chain is cut into
    that many equal sections, each strided evenly to its count), or 'ddimN' for the
    fixed integer stride that DDIM uses, giving exactly N steps.
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired = int(section_counts[len("ddim") :])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == desired:
                    return list(range(0, num_timesteps, stride))
            raise ValueError(f"cannot create exactly {desired} steps with an integer stride from {num_timesteps}")
        section_counts = [int(x) for x in section_counts.split(",")]
    elif isinstance(section_counts, int):
        section_counts = [section_counts]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start = 0
    kept: list[int] = []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide a section of {size} steps into {count}")
        frac_stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += frac_stride
        start += size
    return sorted(set(kept))
