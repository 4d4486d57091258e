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
