"""Configuration: load a YAML file (optionally merged with overrides) and validate it against
the schema shipped with the package (`workflow/schemas/config.schema.yaml`), with errors that name the offending key."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

DEFAULT_SCHEMA = Path(__file__).with_name("config.schema.yaml")  # workflow/schemas/ links here


class ConfigError(ValueError):
    pass


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict, schema_path: str | Path = DEFAULT_SCHEMA) -> dict:
    """Raise ConfigError listing every violation as `config key 'a.b.c': what is wrong`."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
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
    return config


def deep_merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, recursing into nested mappings (as Snakemake merges --configfile)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | Path) -> dict:
    """Load and merge YAML files left to right, then validate."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return validate_config(config)
