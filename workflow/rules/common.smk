import json

from lowdensity.config import validate_config


validate_config(config)


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


def cell_name(loss, alpha, beta):
    """File stem of an (α, β) cell of the guidance grids, e.g. hardness_a0.5_b1."""
    return f"{loss}_a{float(alpha):g}_b{float(beta):g}"


def guidance_cells():
    """Every (loss, α, β) cell any figure needs, once each."""
    g = config["guidance"]
    cells = {("hardness", a, b) for a in g["fig3"]["alphas"] for b in g["fig3"]["betas"]}
    cells |= {("hardness", a, 0.0) for a in g["fig4a_alphas"]}
    cells |= {("hardness", g["fig4b"]["alpha"], b) for b in g["fig4b"]["betas"]}
    cells |= {("hardness", a, g["fig10"]["beta"]) for a in g["fig10"]["alphas"]}
    cells |= {(loss, a, g["figA5"]["beta"]) for a in g["figA5"]["alphas"] for loss in ("hardness", "softmax")}
    return sorted({cell_name(*c) for c in cells})


def cell_paths(cells):
    return [f"results/samples/cells/{c}.npz" for c in cells]
