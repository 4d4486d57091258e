"""What a refactor must not change: the outputs of a seeded run and the plans of every config.

    python tools/refactor_check.py hash WORKDIR > hashes.txt   # sha256 of every output of a run
    python tools/refactor_check.py plans > plans.txt           # every config's dry-run jobs

Run each before and after a change and `diff` the two files. Set SOURCE_DATE_EPOCH for both runs,
so that matplotlib writes the same creation date into the PDFs. Timings (benchmark files, logs)
and the run's own bookkeeping are left out: they differ between any two runs. `.npz` and `.pt`
files are hashed by content (each array's name, dtype, shape and bytes), not as files: both are
zip archives whose entries carry a time stamp (`.npz`) or the temporary file's name (`.pt`).
Measured wall-clock (sample files' `seconds*` entries, Table 1's cost and speed-up columns)
differs between any two runs too and is left out of the hashes.
"""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIPPED = (  # timings, and Markdown copies of tables whose timed columns the CSV hash leaves out
    "results/benchmarks/",
    "results/stage_costs",
    "results/table1.md",
    "results/table1_samplers.md",
    "results/samplers.md",
)
TIMED = re.compile(r"seconds|cost|speedup")


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path) as arrays:
            entries = {name: arrays[name] for name in arrays.files if not TIMED.search(name)}
    elif path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path)
        return hashlib.sha256(table.drop(columns=[c for c in table if TIMED.search(c)]).to_csv().encode()).hexdigest()
    elif path.suffix == ".pt":
        import torch

        entries = dict(flatten(torch.load(path, map_location="cpu", weights_only=True)))
    else:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    for name in sorted(entries):
        value = entries[name]
        value = value.numpy() if hasattr(value, "numpy") else value
        digest.update(f"{name} {getattr(value, 'dtype', type(value))} {getattr(value, 'shape', '')}".encode())
        digest.update(value.tobytes() if hasattr(value, "tobytes") else repr(value).encode())
    return digest.hexdigest()


def flatten(value, prefix=""):
    """A loaded checkpoint's leaves as (path, value) pairs."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}/{index}")
    else:
        yield prefix, value


def output_hashes(workdir: Path) -> list[str]:
    rows = []
    for top in ("results", "paper_figures"):
        for path in sorted((workdir / top).rglob("*")):
            name = path.relative_to(workdir).as_posix()
            if path.is_file() and not name.startswith(SKIPPED):
                rows.append(f"{content_hash(path)}  {name}")
    return rows


def planned_jobs(configs: list[str], workdir: Path) -> list[str]:
    """Each planned job as 'rule: outputs', sorted, from a dry run in an empty folder."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "-n",
        "--configfile",
    ]
    out = subprocess.run([*cmd, *configs], capture_output=True, text=True, cwd=REPO)
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    output: (.*)$", out.stdout + out.stderr, re.M)
    return sorted(f"{rule}: {outputs}" for rule, outputs in jobs)


def main() -> None:
    if sys.argv[1] == "hash":
        print("\n".join(output_hashes(Path(sys.argv[2]))))
        return
    workdir = Path("/tmp/lowdensity-plans")
    workdir.mkdir(exist_ok=True)
    configurations = [["config.yaml"]] + [[f"configs/{p.name}"] for p in sorted((REPO / "configs").glob("*.yaml"))]
    for configs in configurations:
        jobs = planned_jobs(configs, workdir)
        print(f"# {' '.join(configs)}: {len(jobs)} jobs")
        print("\n".join(jobs))


if __name__ == "__main__":
    main()
