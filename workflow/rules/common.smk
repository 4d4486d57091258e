import json
import re
import signal
import threading

import sys

from lowdensity.config import ConfigError, deep_merge, missing_local_files, planning_estimate, validate_config
from lowdensity.layout import (
    WEIGHT_PATTERN,
    cell_name,
    cell_weights,
    guided_num_samples,
    point_name,
    shards_holding_first,
    weight_text,
)

validate_config(config, check_files=False)

# Local files the configuration names (pretrained weights) may be fetched after planning: a dry
# run lists what is missing as a warning and still plans; a real run refuses before any job
# starts (onstart runs only when jobs are about to run, never in a dry run).
MISSING_FILES = missing_local_files(config)
for problem in MISSING_FILES:
    print(f"warning: {problem}", file=sys.stderr)


# Printed when a dry run or a run plans (the executor, and so whether this is a dry run, is
# chosen only after the workflow is read); jobs that read the workflow again stay quiet.
if workflow.is_main_process:
    for line in planning_estimate(config, f"{workflow.basedir}/config.yaml", f"{workflow.basedir}/benchmarks/runs"):
        print(line, file=sys.stderr)


onstart:
    if MISSING_FILES:
        raise ConfigError("missing local files, nothing was run:\n  " + "\n  ".join(MISSING_FILES))


# Every rule runs one `lowdensity` command; `exec` makes it the job's process itself rather than
# a child of the job's shell, so that a stop request sent to the job reaches the stage.
shell.prefix("set -euo pipefail; exec ")


def stop_running_jobs(*_):
    """SIGTERM to every job this snakemake runs locally: a training stage finishes its step,
    checkpoints it and exits; the others exit at once (their outputs are written atomically, so
    nothing half-written is left). Cluster jobs are cancelled by the executor itself."""
    for process in list(getattr(shell, "_processes", {}).values()):
        try:
            process.terminate()
        except ProcessLookupError:
            pass


def stop_jobs_then_interrupt(number, frame):
    """SIGINT (Ctrl-C, or `kill -INT` of snakemake alone): stop the running jobs, then let
    snakemake end as on Ctrl-C, instead of waiting for them to finish."""
    stop_running_jobs()
    raise KeyboardInterrupt


def stop_jobs_on_graceful_exit():
    """SIGTERM to snakemake stops scheduling new jobs (its own graceful exit); running jobs are
    stopped too rather than run to their end."""
    from snakemake.scheduling.job_scheduler import JobScheduler

    graceful = JobScheduler.exit_gracefully
    if getattr(graceful, "stops_running_jobs", False):
        return

    def exit_gracefully(self, *args):
        stop_running_jobs()
        return graceful(self, *args)

    exit_gracefully.stops_running_jobs = True
    JobScheduler.exit_gracefully = exit_gracefully


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, stop_jobs_then_interrupt)
    stop_jobs_on_graceful_exit()


def section(*names):
    """The named config sections as one JSON string: a rule's params, so that editing a
    section reruns exactly the rules that use it."""
    if len(names) == 1:
        return json.dumps(config[names[0]], sort_keys=True)
    return json.dumps({name: config[name] for name in names}, sort_keys=True)


def stage_resources(stage):
    """Cluster resources of a stage from config['resources'] (SLURM executor names)."""
    spec = config["resources"][stage]
    out = {
        "gpu": spec["gpu"],
        "mem_mb": spec["mem_mb"],
        "runtime": spec["runtime"],
        "cpus_per_task": spec["cpus_per_task"],
    }
    if "gpu_model" in spec:
        out["gpu_model"] = spec["gpu_model"]
    return out


SHARDS = list(range(config["sampling"]["shards"]))
SET_SIZES = {"baseline": config["sampling"]["num_samples"], "guided": guided_num_samples(config)}  # the two main sets
SHAPE_OF_DATA = "results/data/val.npz"  # the prepared split whose (C, H, W) every sample file must have
GAN = config["gan"]["enabled"]
GENERATORS = ["baseline", "guided"] + (["gan"] if GAN else [])  # the sample sets every evaluation compares


def counted_cells():
    """The (loss, α, β) cells a distribution, a precision or a fixed-seed row is computed from
    (figures 4a, 4b, 10, A.5): each holds guidance.cell_samples samples."""
    g = config["guidance"]
    cells = {("hardness", a, 0.0) for a in g["fig4a_alphas"]}
    cells |= {("hardness", g["fig4b"]["alpha"], b) for b in g["fig4b"]["betas"]}
    cells |= {("hardness", a, g["fig10"]["beta"]) for a in g["fig10"]["alphas"]}
    cells |= {(loss, a, g["figA5"]["beta"]) for a in g["figA5"]["alphas"] for loss in ("hardness", "softmax")}
    return {cell_name(*c) for c in cells}


def guidance_cells():
    """Every (loss, α, β) cell any figure needs, once each: the counted cells and figure 3's grid."""
    g = config["guidance"]
    return sorted(
        counted_cells() | {cell_name("hardness", a, b) for a in g["fig3"]["alphas"] for b in g["fig3"]["betas"]}
    )


def cell_sizes():
    """Samples per cell: a cell that only figure 3 shows holds the seeds it shows (the first sample
    of each shown class; sample i has label i mod C, so max(classes) + 1 samples); every counted
    cell holds guidance.cell_samples."""
    g = config["guidance"]
    counted = counted_cells()
    shown = min(max(g["fig3"]["classes"]) + 1, g["cell_samples"])
    return {c: g["cell_samples"] if c in counted else shown for c in guidance_cells()}


CELL_SIZES = cell_sizes()


def cell_source(cell):
    """The main set a cell is the prefix of, or None: a cell's sampler is the baseline's when
    α = β = 0 (Algorithm 1 with zero weights is Eq. 2, bit for bit) and the main guided set's at
    its (loss, α, β); both use `sampling` and sample i's seed and label, so the cell is that set's
    first CELL_SIZES[cell] samples (if the set holds that many) and is not sampled twice."""
    loss, alpha, beta = cell_weights(cell)
    g = config["guidance"]
    if alpha == beta == 0:
        source = "baseline"
    elif (loss, alpha, beta) == (g["loss"], float(g["alpha"]), float(g["beta"])):
        source = "guided"
    else:
        return None
    return source if CELL_SIZES[cell] <= SET_SIZES[source] else None


PREFIX_CELLS = {c: source for c in guidance_cells() if (source := cell_source(c))}


def prefix_cell_shards(wildcards):
    """The shards of the cell's main set that hold its samples (shards split the set contiguously)."""
    source = PREFIX_CELLS[wildcards.cell]
    first = shards_holding_first(SET_SIZES[source], len(SHARDS), CELL_SIZES[wildcards.cell])
    return [f"results/samples/{source}/shard_{s}.npz" for s in first]


def prefix_cell_metadata(wildcards):
    """What the guided sampler would record for the cell (its loss, α, β and guidance's τ, Σ_θ and β form)."""
    loss, alpha, beta = cell_weights(wildcards.cell)
    g = config["guidance"]
    return json.dumps(
        {
            "alpha": alpha,
            "beta": beta,
            "tau": g["tau"],
            "loss": loss,
            "step_scale": g["step_scale"],
            "beta_form": g["beta_form"],
        }
    )


H_PRIME_BELOW = config["discriminator"]["timesteps"]["max"]  # H′ is consulted at t < this only (None: everywhere)


def keeps_branch_states(cell):
    """A sampled β = 0 cell with α ≠ 0 keeps its chains' states before the first step where H′
    would be consulted (when H′ is trained only below discriminator.timesteps.max), for the cells
    of its loss and α at other β to continue from (`branch_source`); so do the main guided set's shards."""
    loss, alpha, beta = cell_weights(cell)
    return H_PRIME_BELOW is not None and beta == 0 and alpha != 0 and cell not in PREFIX_CELLS


def branch_source(cell):
    """The file whose kept states a sampled cell continues, or None (it is sampled whole): the main
    guided set's shard that holds the cell's samples when the cell has that set's loss and α, else
    the cell's β = 0 twin. The chains are the same computation until H′ is first consulted, so the
    cell runs only the last steps (with 100 steps and H′ trained at t < 20, two of them)."""
    loss, alpha, beta = cell_weights(cell)
    if H_PRIME_BELOW is None or alpha == 0 or cell in PREFIX_CELLS:
        return None
    g = config["guidance"]
    if (loss, alpha) == (g["loss"], float(g["alpha"])) and CELL_SIZES[cell] <= SET_SIZES["guided"]:
        shards = shards_holding_first(SET_SIZES["guided"], len(SHARDS), CELL_SIZES[cell])
        if len(shards) == 1:
            return f"results/samples/guided/shard_{shards[0]}.npz"
    twin = cell_name(loss, alpha, 0.0)
    if beta == 0 or twin not in CELL_SIZES or not keeps_branch_states(twin) or CELL_SIZES[twin] < CELL_SIZES[cell]:
        return None
    return cell_paths([twin])[0]


def wildcard_cell(wildcards):
    """The cell a `sample_cell` job makes: its output's file stem, from the {loss}, {alpha}, {beta} wildcards."""
    return f"{wildcards.loss}_a{wildcards.alpha}_b{wildcards.beta}"


def cell_branching(wildcards, input):
    """The sampler's options for continuing and keeping branch states (`branch_source`, `keeps_branch_states`)."""
    cell = wildcard_cell(wildcards)
    options = [f"--branch_from {input.branch}"] if "branch" in input.keys() else []
    if keeps_branch_states(cell):
        options.append(f"--keep_state_below {H_PRIME_BELOW}")
    return " ".join(options)


def cell_inputs(wildcards):
    """A cell's guides (`guided_inputs`) and, when it continues other chains, the file that kept them."""
    source = branch_source(wildcard_cell(wildcards))
    return {**guided_inputs(wildcards.alpha, wildcards.beta), **({"branch": source} if source else {})}


def cell_paths(cells):
    return [f"results/samples/cells/{c}.npz" for c in cells]


# ---- the discriminator and its ablation (workflow/rules/discriminator.smk)


def ablation_variants():
    """name → the `discriminator` section with the variant's overrides merged in, evaluated at
    the ablation's timesteps; each is validated like the section itself."""
    study = config["discriminator_ablation"]
    variants = {}
    for variant in study["variants"]:
        merged = deep_merge(
            config["discriminator"], {**variant["overrides"], "eval_timesteps": study["eval_timesteps"]}
        )
        try:
            validate_config({**config, "discriminator": merged}, check_files=False)
        except ConfigError as err:
            raise ConfigError(f"config key 'discriminator_ablation.variants' ({variant['name']}): {err}") from None
        variants[variant["name"]] = merged
    if len(variants) != len(study["variants"]):
        raise ConfigError("config key 'discriminator_ablation.variants': variant names must be unique")
    return variants


ABLATION = ablation_variants()


# ---- the fidelity study (workflow/rules/fidelity_study.smk)

STUDY = config["fidelity_study"]


def study_discriminator():
    """The rungs' H′: `discriminator` with the study's overrides, trained on the rung's baseline
    set alone (no extra pool: the pool is the final model's), validated like the section itself."""
    merged = deep_merge(config["discriminator"], {**STUDY["discriminator"], "extra_samples": 0})
    try:
        validate_config({**config, "discriminator": merged}, check_files=False)
    except ConfigError as err:
        raise ConfigError(f"config key 'fidelity_study.discriminator': {err}") from None
    return merged


def study_cells():
    """Cell name → its weights: every (α, β, form) of the sweep; a β = 0 cell is the same in every
    form, so it is sampled once (form `paper`)."""
    cells = {}
    for alpha in STUDY["alphas"]:
        for beta in STUDY["betas"]:
            for form in STUDY["beta_forms"] if beta else ["paper"]:
                name = f"a{weight_text(alpha)}_b{weight_text(beta)}" + (f"_{form}" if beta else "")
                cells[name] = {"alpha": float(alpha), "beta": float(beta), "form": form}
    return cells


STUDY_DISCRIMINATOR = study_discriminator()
STUDY_CELLS = study_cells()
RUNGS = [f"step{n}" for n in sorted({*config["ddpm"]["train"].get("snapshots", []), config["ddpm"]["train"]["steps"]})]


def rung_model(wildcards):
    """The DDPM of a rung: the trained model at ddpm.train.steps, else that step's EMA snapshot."""
    step = int(wildcards.rung.removeprefix("step"))
    if step == config["ddpm"]["train"]["steps"]:
        return "results/ddpm/model.pt"
    return f"results/ddpm/snapshots/step_{step}.pt"


def study_cell_inputs(wildcards):
    """A study cell reads its rung's DDPM, the classifier when α ≠ 0 and the rung's H′ when β ≠ 0."""
    weights = STUDY_CELLS[wildcards.cell]
    inputs = {"ddpm": rung_model(wildcards)}
    if weights["alpha"]:
        inputs.update(GUIDES["classifier"])
    if weights["beta"]:
        folder = f"results/fidelity_study/{wildcards.rung}/discriminator"
        inputs.update(discriminator_model=f"{folder}/model.pt", discriminator_gaussians=f"{folder}/gaussians.pt")
    return inputs


POOL_SIZE = max([config["discriminator"]["extra_samples"]] + [v["extra_samples"] for v in ABLATION.values()])


def discriminator_inputs(disc_cfg):
    """What training a discriminator of this configuration reads: the data, the baseline set
    (and the extra pool), and the classifier when it starts from it or trains a head on it."""
    inputs = {
        "train": "results/data/train.npz",
        "samples": ["results/samples/baseline.npz"]
        + (["results/samples/discriminator_pool.npz"] if disc_cfg["extra_samples"] else []),
    }
    if disc_cfg["init"] == "classifier" or disc_cfg["features"] == "frozen_classifier":
        inputs["classifier"] = "results/classifier/model.pt"
    return inputs


def classifier_option(wildcards, input):
    return f"--classifier {input.classifier}" if "classifier" in input.keys() else ""


# ---- evaluation (workflow/rules/evaluation.smk)

EXTRACTORS = [e["name"] for e in config["evaluation"]["extractors"]] + ["classifier"]
DEFAULT_EXTRACTOR = EXTRACTORS[0]
IMAGE_SETS = {
    "reference": "results/data/train.npz",
    "real": "results/data/val.npz",
    **{g: f"results/samples/{g}.npz" for g in GENERATORS},
}
EVALUATED_SETS = ["real"] + GENERATORS
DDIM_RUNS = [(sampler, steps) for sampler in ("baseline", "guided") for steps in config["figA7"]["steps"]]
DDIM_SETS = {f"ddim_{sampler}_{steps}": f"results/samples/ddim/{sampler}_{steps}.npz" for sampler, steps in DDIM_RUNS}
IMAGE_SETS.update(DDIM_SETS)
STUDY_SETS = {  # the fidelity study's sets: each rung's baseline and cells
    f"study_{rung}_{name}": f"results/fidelity_study/{rung}/"
    + ("baseline.npz" if name == "baseline" else f"cells/{name}.npz")
    for rung in RUNGS
    for name in ["baseline", *STUDY_CELLS]
}
IMAGE_SETS.update(STUDY_SETS)
FIG4B_CELLS = {
    b: cell_name("hardness", config["guidance"]["fig4b"]["alpha"], b) for b in config["guidance"]["fig4b"]["betas"]
}
IMAGE_SETS.update({f"cell_{c}": f"results/samples/cells/{c}.npz" for c in FIG4B_CELLS.values()})
FIG4B_SPACES = ["classifier", DEFAULT_EXTRACTOR]

# ---- the low-density samplers side by side (workflow/rules/samplers.smk)

SWEPT = ("paper", "boost_and_skip", "self_guided", "minority_guidance")
SWEEP_POINTS = [point_name("baseline", 0)] + [
    point_name(s, v) for s in SWEPT for v in config["samplers"][s]["strengths"]
]
DEFAULT_POINTS = [point_name("baseline", 0)] + [point_name(s, config["samplers"][s]["default"]) for s in SWEPT]
SWEEP_SETS = {f"sweep_{p}": f"results/samples/sweep/{p}.npz" for p in SWEEP_POINTS}
IMAGE_SETS.update(SWEEP_SETS)
SAMPLER_SPACES = [DEFAULT_EXTRACTOR, "classifier"]


GUIDES = {
    "classifier": {
        "classifier_model": "results/classifier/model.pt",
        "classifier_gaussians": "results/classifier/gaussians.pt",
    },
    "discriminator": {
        "discriminator_model": "results/discriminator/model.pt",
        "discriminator_gaussians": "results/discriminator/gaussians.pt",
    },
}


def guided_inputs(alpha, beta):
    """The DDPM and the guides a guided sampler with these weights reads: the classifier's when
    α ≠ 0, the discriminator's when β ≠ 0 (a zero weight never loads its network). So a β = 0 cell
    starts as soon as the classifier is ready, beside H′'s training, instead of after it."""
    inputs = {"ddpm": "results/ddpm/model.pt"}
    for guide, weight in (("classifier", alpha), ("discriminator", beta)):
        if float(weight):
            inputs.update(GUIDES[guide])
    return inputs


def guide_arguments(wildcards, input):
    """`--classifier.model M --classifier.gaussians G` (and the discriminator's) for the guides among the inputs."""
    return " ".join(
        f"--{guide}.model {input[f'{guide}_model']} --{guide}.gaussians {input[f'{guide}_gaussians']}"
        for guide in GUIDES
        if f"{guide}_model" in input.keys()
    )


def sweep_params(wildcards):
    """What a sweep point's sampler reads: the baseline's sampling (the sweep's sample count, one
    job), its own section without the sweep lists (adding a strength reruns no other point), the
    distance for the two successors and the guidance settings for the paper's sampler."""
    sampler = wildcards.sampler
    own = {k: v for k, v in config["samplers"].get(sampler, {}).items() if k not in ("strengths", "default")}
    params = {
        "sampling": {**config["sampling"], "num_samples": config["samplers"]["num_samples"], "shards": 1},
        "samplers": {sampler: own},
    }
    if sampler in ("self_guided", "minority_guidance"):
        params["samplers"]["distance"] = config["samplers"]["distance"]
    if sampler == "paper":
        params["guidance"] = {k: config["guidance"][k] for k in ("tau", "loss", "step_scale", "beta_form")}
    return json.dumps(params, sort_keys=True)


def sweep_inputs(wildcards):
    """The DDPM and whatever guides the point's sampler consults (the paper's: those of non-zero weight)."""
    if wildcards.sampler == "paper":
        return guided_inputs(wildcards.strength, config["samplers"]["paper"]["beta"])
    inputs = {"ddpm": "results/ddpm/model.pt"}
    if wildcards.sampler == "self_guided" and config["samplers"]["distance"]["kind"] == "classifier":
        inputs["classifier_model"] = "results/classifier/model.pt"
    if wildcards.sampler == "minority_guidance":
        inputs["minority_model"] = "results/samplers/minority/model.pt"
    return inputs


def guide_options(wildcards, input):
    """Every guide of the point as a JSON object name → path (the stage's `guides`)."""
    return json.dumps({k: v for k, v in input.items() if k != "ddpm"})


def feature_inputs(wildcards):
    inputs = {"images": IMAGE_SETS[wildcards.set], "data": SHAPE_OF_DATA}
    if wildcards.extractor == "classifier":
        inputs["classifier"] = "results/classifier/model.pt"
    return inputs


def evaluation_keys(*keys):
    """Only the evaluation settings a rule uses, so that editing one reruns only its users."""
    return json.dumps({k: config["evaluation"][k] for k in keys}, sort_keys=True)


def as_json(key, names=None):
    """A params function: the input list `key` as a JSON list or, with `names` (one per path), as a
    JSON object name → path: a stage's list and dict arguments (pass them as `{params.x:q}`)."""

    def value(wildcards, input):
        paths = [input[key]] if isinstance(input[key], str) else list(input[key])
        return json.dumps(paths if names is None else dict(zip(names, paths)))

    return value


def features(extractor, set_name):
    return f"results/features/{extractor}/{set_name}.npy"


def set_metrics(extractor, set_name, kind=""):
    """The per-image metrics (or, kind='_summary', the set's summary) of one set in one space."""
    return f"results/metrics/{extractor}/{set_name}{kind}.csv"


def ddim_sampling(wildcards):
    """The sampling section for a DDIM set of figure A.7: η = 0, `steps` evenly strided steps."""
    return json.dumps(
        {
            **config["sampling"],
            "method": "ddim",
            "eta": 0.0,
            "steps": f"ddim{wildcards.steps}",
            "num_samples": config["figA7"]["num_samples"],
            "shards": 1,
        },
        sort_keys=True,
    )


def gan_keys(*keys):
    """Only the GAN settings a rule uses (training does not rerun when the truncation changes)."""
    return json.dumps({k: config["gan"][k] for k in keys}, sort_keys=True)


def gan_sampling_inputs(wildcards):
    """The trained generator, or (pretrained BigGAN-deep) the data for the class names and size."""
    if config["gan"]["pretrained"]["path"]:
        return {"data": "results/data/train.npz"}
    return {"model": "results/gan/model.pt"}
