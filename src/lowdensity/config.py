"""Configuration: load a YAML file (optionally merged with overrides) and validate it against
the schema shipped with the package (`workflow/schemas/config.schema.yaml`), with errors that name the offending key."""

from __future__ import annotations

import copy
import csv
import functools
import math
import os
import shutil
from pathlib import Path

import jsonschema
import yaml

from lowdensity.core.respacing import space_timesteps

DEFAULT_SCHEMA = Path(__file__).with_name("config.schema.yaml")  # workflow/schemas/ links here
YAML_LOADER = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)  # libyaml's parser where PyYAML has it: the same objects, faster


class ConfigError(ValueError):
    pass


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


@functools.lru_cache(maxsize=None)
def _validator(schema_path: str) -> jsonschema.Draft202012Validator:
    """The schema's validator, read once per process (Snakemake validates the configuration more than once)."""
    return jsonschema.Draft202012Validator(yaml.load(Path(schema_path).read_text(), Loader=YAML_LOADER))


def validate_config(config: dict, schema_path: str | Path = DEFAULT_SCHEMA, check_files: bool = True) -> dict:
    """Raise ConfigError listing every violation as `config key 'a.b.c': what is wrong`.

    `check_files=False` leaves out the local files the configuration names (`missing_local_files`):
    the workflow plans without them and refuses to start a run that lacks them."""
    validator = _validator(str(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            if err.validator == "additionalProperties":
                extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
                where = _key(err.absolute_path)
                lines.append(f"config key {where!r}: unknown key(s) {', '.join(map(repr, extra))}")
            else:
                lines.append(f"config key {_key(err.absolute_path)!r}: {err.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    non_finite = [
        f"config key {_key(path)!r}: {value} is not a finite number"
        for path, value in _numbers(config)
        if not math.isfinite(value)
    ]
    if non_finite:  # NaN passes every bound of the schema (each comparison is false), ±inf every one-sided bound
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(non_finite))
    if "diffusion" in config:  # a whole pipeline configuration (not a section checked on its own)
        problems = related_key_problems(config) + (missing_local_files(config) if check_files else [])
        if not problems and not config.get("allow_large", False):
            problems = workload_problems(config)
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def _numbers(node, path=()):
    """(path, value) of every float in a configuration, lists included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers(value, path + (i,))
    elif isinstance(node, float):
        yield path, node


def related_key_problems(config: dict) -> list[str]:
    """Constraints between keys that the schema cannot state, checked before any job runs:
    timesteps within the T-step chain, respacings that exist, shards and k values that fit the
    set sizes, a Table 1 space that is configured. One message per violation, naming the key."""

    problems = []
    T = config["diffusion"]["num_steps"]

    def check(ok: bool, key: str, text: str) -> None:
        if not ok:
            problems.append(f"config key {key!r}: {text}")

    for section in ("classifier", "discriminator", "discriminator_ablation"):
        outside = [t for t in config.get(section, {}).get("eval_timesteps", []) if t >= T]
        check(
            not outside,
            f"{section}.eval_timesteps",
            f"timesteps {outside} are outside the chain of diffusion.num_steps = {T} (0 … {T - 1})",
        )
    for section in ("classifier", "discriminator"):
        check(
            not config.get(section, {}).get("train", {}).get("snapshots"),
            f"{section}.train.snapshots",
            "EMA snapshots are written for the DDPM only (ddpm.train.snapshots)",
        )
    ddpm_train = config.get("ddpm", {}).get("train", {})
    late = [n for n in ddpm_train.get("snapshots") or [] if n > ddpm_train.get("steps", 0)]
    check(
        not late,
        "ddpm.train.snapshots",
        f"steps {late} come after the run's end (ddpm.train.steps = {ddpm_train.get('steps')})",
    )
    study = config.get("fidelity_study", {})
    check(
        0 in study.get("betas", [0]),
        "fidelity_study.betas",
        f"{study.get('betas')} must hold 0, each sweep's reference",
    )
    t_max = config.get("discriminator", {}).get("timesteps", {}).get("max")
    check(t_max is None or t_max <= T, "discriminator.timesteps.max", f"{t_max} exceeds diffusion.num_steps = {T}")

    def respacing(value, key: str) -> int | None:
        """The number of steps the respacing keeps (None, and a problem, if it is not one)."""
        try:
            kept = space_timesteps(T, value if not str(value).isdigit() else int(value))
            check(len(kept) > 0, key, f"{value!r} keeps no step of the chain")
            return len(kept) or None
        except ValueError as err:
            check(False, key, f"{value!r} is not a respacing of the {T}-step chain (diffusion.num_steps): {err}")
            return None

    sampling = config.get("sampling", {})
    sampling_steps = respacing(sampling["steps"], "sampling.steps") if "steps" in sampling else None
    for steps in config.get("figA7", {}).get("steps", []):
        respacing(f"ddim{steps}", "figA7.steps")
    nll_steps = config.get("nll", {}).get("steps")
    check(nll_steps is None or nll_steps <= T, "nll.steps", f"{nll_steps} exceeds diffusion.num_steps = {T}")
    nll_terms = config.get("nll", {}).get("terms")
    check(
        nll_terms is None or nll_terms <= (nll_steps or T),
        "nll.terms",
        f"{nll_terms} exceeds the {nll_steps or T} terms of the chain (nll.steps, or diffusion.num_steps)",
    )

    num_samples = sampling.get("num_samples", 0)
    check(
        sampling.get("shards", 1) <= num_samples,
        "sampling.shards",
        f"{sampling.get('shards')} shards for sampling.num_samples = {num_samples}: every shard needs a sample",
    )
    guidance = config.get("guidance", {})
    cell_samples = guidance.get("cell_samples", 0)
    check(
        cell_samples <= num_samples,
        "guidance.cell_samples",
        f"{cell_samples} exceeds sampling.num_samples = {num_samples} (cells use the baseline's first seeds)",
    )
    guided_samples = guidance.get("num_samples")
    if guided_samples is not None:
        check(
            sampling.get("shards", 1) <= guided_samples,
            "guidance.num_samples",
            f"{guided_samples} samples for the guided set's sampling.shards "
            f"= {sampling.get('shards')}: every shard needs a sample",
        )
    paired = min(num_samples, num_samples if guided_samples is None else guided_samples)
    check(
        guidance.get("pairs", 0) <= paired,
        "guidance.pairs",
        f"{guidance.get('pairs')} baseline/guided pairs, but the two sets share only their first {paired} seeds "
        "(sampling.num_samples, guidance.num_samples)",
    )

    evaluation = config.get("evaluation", {})
    reference = evaluation.get("num_reference")
    for key in ("knn_k", "lof_k", "precision_k"):
        k = evaluation.get(key)
        if k is not None and reference is not None:
            check(
                k < reference,
                f"evaluation.{key}",
                f"{k} neighbours need more than evaluation.num_reference = {reference} references",
            )
    k = evaluation.get("precision_k")
    sets = {
        "sampling.num_samples": num_samples,
        "guidance.num_samples": guided_samples,
        "figA7.num_samples": config.get("figA7", {}).get("num_samples"),
        "guidance.cell_samples": cell_samples,
    }
    for name, size in sets.items():
        if k is not None and size is not None:
            check(
                k < size,
                "evaluation.precision_k",
                f"{k} exceeds the {size} samples of {name} (recall needs k < set size)",
            )
    precision = guidance.get("precision", {})
    if precision:
        check(
            precision["k"] < min(precision["num_real"], cell_samples or precision["num_real"]),
            "guidance.precision.k",
            f"{precision['k']} must be below guidance.precision.num_real and guidance.cell_samples",
        )
    if precision and evaluation:
        searched = max(evaluation["lof_k"], evaluation["precision_k"])
        check(
            precision["k"] <= searched,
            "guidance.precision.k",
            f"{precision['k']} exceeds the {searched} neighbours the "
            "reference search keeps (max of evaluation.lof_k and evaluation.precision_k), which figure 4b's balls use",
        )
    space = config.get("table1", {}).get("space")
    spaces = [e["name"] for e in evaluation.get("extractors", [])] + ["classifier"]
    check(space is None or space in spaces, "table1.space", f"{space!r} is none of the feature spaces {spaces}")
    problems += sampler_key_problems(config, sampling_steps)
    return problems


# A guard against typos (an extra three zeros), not a scheduler: the largest work one stage may be
# planned with, in pixel-steps (images × network evaluations × pixels). On a GPU (device cuda, or
# auto where one is visible): three times the paper-scale CIFAR-10 configuration's largest stage,
# its DDPM training; on CPUs, per core: about 300 times the default's largest stage. The paper-scale
# configurations, planned on machines without a GPU for clusters with many, set `allow_large: true`.
GPU_WORKLOAD_BOUND = 1e12
CPU_WORKLOAD_BOUND_PER_CORE = 3e10


def stage_workloads(config: dict) -> dict[str, tuple[str, float]]:
    """Each large stage's work in pixel-steps, with the key that sets its size: training is steps ×
    batch (× 3: a forward and a backward pass), sampling images × steps (guided: × 3, one guide's
    forward and backward per step). Approximate, and enough to tell a typo from a real plan."""
    pixels = config["data"]["resolution"] ** 2
    sampling, guidance = config["sampling"], config["guidance"]
    steps = len(space_timesteps(config["diffusion"]["num_steps"], _respacing(sampling["steps"])))
    guided = sampling["num_samples"] if guidance.get("num_samples") is None else guidance["num_samples"]
    work = {
        "train_ddpm": (
            "ddpm.train.steps",
            3 * config["ddpm"]["train"]["steps"] * config["ddpm"]["train"]["batch_size"],
        ),
        "sample_baseline": ("sampling.num_samples", sampling["num_samples"] * steps),
        "sample_guided": ("guidance.num_samples", 3 * guided * steps),
    }
    for encoder in ("classifier", "discriminator"):
        train = config[encoder]["train"]
        work[f"train_{encoder}"] = (f"{encoder}.train.steps", 3 * train["steps"] * train["batch_size"])
    return {stage: (key, float(value) * pixels) for stage, (key, value) in work.items()}


def workload_problems(config: dict) -> list[str]:
    """Stages whose planned work exceeds what the configured device can do in days: a GPU (device
    auto or cuda), or this machine's cores (device cpu). One message per stage, naming the key."""
    device = config.get("device", "auto")
    on_cpu = device == "cpu" or (device == "auto" and not gpu_visible())
    bound = CPU_WORKLOAD_BOUND_PER_CORE * (os.cpu_count() or 1) if on_cpu else GPU_WORKLOAD_BOUND
    why = "device: cpu" if device == "cpu" else "device: auto, and no GPU here"
    where = f"this machine's {os.cpu_count()} CPU cores ({why})" if on_cpu else "a GPU"
    return [
        f"config key {key!r}: stage {stage} would do {work:.2g} pixel-steps of network evaluation, above "
        f"{bound:.2g}, days of work for {where}; check the number, or set allow_large: true to run it"
        for stage, (key, work) in stage_workloads(config).items()
        if work > bound
    ]


def network_size(config: dict, stage: str) -> float:
    """A stage's network cost relative to width 1 and one residual block per level: channels² ×
    residual blocks × levels, the terms a U-Net's multiply-adds grow with at a fixed resolution."""
    section = {"train_ddpm": "ddpm", "sample_baseline": "ddpm", "sample_guided": "ddpm"}.get(stage, stage[6:])
    model = config[section]["model"]
    return float(model["channels"] ** 2 * model["num_res_blocks"] * len(model["channel_mult"]))


def estimated_core_hours(config: dict, reference: dict, reference_costs: list[dict]) -> dict[str, float]:
    """Each large stage's core-hours, scaled from a measured run of `reference` (the default
    configuration) by pixel-steps (`stage_workloads`) × network size (`network_size`).
    `reference_costs`: that run's stage table (benchmarks/runs/default_*.csv rows: rule, wall_s; its
    jobs ran one thread each, so wall seconds are core-seconds). Rough, and said so where printed:
    a planning aid against days-long surprises, not a scheduler's estimate."""
    measured = {row["rule"]: float(row["wall_s"]) for row in reference_costs}
    planned, baseline = stage_workloads(config), stage_workloads(reference)
    return {
        stage: measured[stage]
        / 3600
        * (work / baseline[stage][1])
        * (network_size(config, stage) / network_size(reference, stage))
        for stage, (_, work) in planned.items()
        if stage in measured
    }


def planning_estimate(config: dict, reference_config: str | Path, runs_dir: str | Path) -> list[str]:
    """Lines a dry run prints: each large stage's estimated core-hours, scaled from the newest
    default run recorded in `runs_dir`/default_runs.csv that kept its stage table. Empty when
    no such run is recorded (a checkout without benchmarks/)."""
    runs_dir = Path(runs_dir)
    index = runs_dir / "default_runs.csv"
    if not index.exists():
        return []
    with index.open() as handle:
        kept = [
            row for row in csv.DictReader(handle) if row["stage_costs"] and (runs_dir / row["stage_costs"]).exists()
        ]
    if not kept:
        return []
    run = kept[-1]
    with (runs_dir / run["stage_costs"]).open() as handle:
        costs = list(csv.DictReader(handle))
    reference = yaml.safe_load(Path(reference_config).read_text())
    hours = estimated_core_hours(config, reference, costs)
    head = (
        f"estimated core-hours per stage on CPUs (scaled from the default run of {run['date']} at "
        f"{run['commit']} on {run['machine']}, {runs_dir / run['stage_costs']}, by images × steps × "
        "network size; rough, and a GPU is many times faster):"
    )
    return [head] + [f"  {stage}: {_duration(value)}" for stage, value in hours.items()]


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:,.0f} h" if hours >= 100 else f"{hours:.2g} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.1f} s"


def gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU (its driver's /proc entry or nvidia-smi), without
    importing torch: the workflow validates its configuration before any job, torch-free."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _respacing(value):
    return int(value) if str(value).isdigit() else value


def missing_local_files(config: dict) -> list[str]:
    """The local files the configuration names that do not exist (extractor weights, a pretrained
    GAN's folder), one message each naming the key, what to download and where to put it. Kept
    apart from the other checks so that a dry run can list them as warnings and still plan."""
    problems = []
    for i, spec in enumerate(config.get("evaluation", {}).get("extractors", [])):
        if spec.get("weights") and not Path(spec["weights"]).is_file():
            problems.append(
                f"config key 'evaluation.extractors[{i}].weights': {spec['weights']} not found: download the "
                f"ImageNet-pretrained timm weights of {spec.get('timm_name')!r} (a state dict saved with "
                "torch.save) on a machine with internet and put them there"
            )
    pretrained = config.get("gan", {}).get("pretrained", {}).get("path")
    if config.get("gan", {}).get("enabled") and pretrained and not Path(pretrained).is_dir():
        problems.append(
            f"config key 'gan.pretrained.path': {pretrained} not found: a folder with BigGAN-deep's "
            "pytorch_model.bin and config.json (pytorch-pretrained-biggan) is expected there"
        )
    return problems


def sampler_key_problems(config: dict, sampling_steps: int | None) -> list[str]:
    """The samplers' sweep (`samplers`): each default one of its strengths (Table 1 reads that
    point), Boost-and-Skip's skip within the `sampling_steps` of the respaced chain (None: the
    respacing is itself invalid, reported already), k within the set and the reference."""
    samplers = config.get("samplers")
    if not samplers:
        return []
    problems = []
    for name in ("paper", "boost_and_skip", "self_guided", "minority_guidance"):
        sweep = samplers[name]
        if sweep["default"] not in sweep["strengths"]:
            problems.append(
                f"config key 'samplers.{name}.default': {sweep['default']} is not one of "
                f"samplers.{name}.strengths {sweep['strengths']} (Table 1 reads the default's point)"
            )
    if sampling_steps is not None and samplers["boost_and_skip"]["skip"] >= sampling_steps:
        problems.append(
            f"config key 'samplers.boost_and_skip.skip': {samplers['boost_and_skip']['skip']} skips every one of "
            f"the {sampling_steps} steps of sampling.steps"
        )
    if samplers["rarity_k"] >= samplers["num_samples"]:
        problems.append(
            f"config key 'samplers.rarity_k': {samplers['rarity_k']} does "
            f"not fit samplers.num_samples = {samplers['num_samples']}"
        )
    reference = config.get("evaluation", {}).get("num_reference")
    if reference is not None and samplers["rarity_k"] >= reference:
        problems.append(
            f"config key 'samplers.rarity_k': {samplers['rarity_k']} neighbours need more than "
            f"evaluation.num_reference = {reference} references"
        )
    return problems


def deep_merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, recursing into nested mappings (as Snakemake merges --configfile)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | Path, check_files: bool = True) -> dict:
    """Load and merge YAML files left to right, then validate (`check_files`: as `validate_config`'s)."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, yaml.load(Path(path).read_text(), Loader=YAML_LOADER) or {})
    return validate_config(config, check_files=check_files)
