"""Every key of the configuration schema, with its description, type, bounds and default: the data
of the configuration reference page and of the test that no key goes undescribed."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import yaml

from lowdensity.config import DEFAULT_SCHEMA, YAML_LOADER


@dataclass(frozen=True)
class KeyDoc:
    """One configuration key: `path` as written in a YAML file (`ddpm.train.lr`; list items as
    `evaluation.extractors[].name`), the schema's `description`, a readable `kind` (type, enum,
    bounds) and the embedded default (`missing` when config.yaml does not set it)."""

    path: str
    description: str
    kind: str
    default: object


MISSING = object()


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, mappings merged key by key (so `{$ref: x, items: {minimum: 1}}`
    keeps the type of x's items and adds the bound)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve(node: dict, defs: dict) -> dict:
    """`node` with its `$ref` and `allOf` parts merged in (properties, bounds, descriptions); the
    node's own keys win, so a description written beside a `$ref` overrides the target's."""
    merged: dict = {}
    parts = [defs[node["$ref"].split("/")[-1]]] if "$ref" in node else []
    for part in parts + node.get("allOf", []):
        merged = _merge(merged, _resolve(part, defs))
    return _merge(merged, {key: value for key, value in node.items() if key not in ("$ref", "allOf")})


def _kind(node: dict, defs: dict) -> str:
    """A short human description of the values a key takes."""
    node = _resolve(node, defs)
    if "enum" in node:
        return ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "oneOf" in node:
        return " or ".join(_kind(option, defs) for option in node["oneOf"])
    types = node.get("type", "object" if "properties" in node else "any")
    types = types if isinstance(types, list) else [types]
    text = " or ".join("null" if t == "null" else t for t in types)
    if "array" in types and "items" in node:
        text = f"list of {_kind(node['items'], defs)}"
        if "null" in types:
            text += " or null"
    bounds = []
    for word, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if word in node:
            bounds.append(f"{symbol} {node[word]}")
    if "pattern" in node:  # HTML, so that a pipe in the pattern cannot end a table cell
        bounds.append(f"matching <code>{html.escape(node['pattern']).replace('|', '&#124;')}</code>")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _children(node: dict, defs: dict) -> tuple[dict, str]:
    """The keys under `node` and how their path continues: a list of objects' item keys after `[]`,
    a mapping of free names (resources per stage) after `.<name>`."""
    node = _resolve(node, defs)
    if "properties" in node:
        return node["properties"], ""
    for word, suffix in (("items", "[]"), ("additionalProperties", ".<name>")):
        inner = node.get(word)
        if isinstance(inner, dict):
            inner = _resolve(inner, defs)
            if "properties" in inner:
                return inner["properties"], suffix
    return {}, ""


def _default(config, parts: list[str]):
    value = config
    for part in parts:
        if part == "<name>":
            return MISSING
        if part.endswith("[]"):
            value = value.get(part[:-2], MISSING) if isinstance(value, dict) else MISSING
            value = value[0] if isinstance(value, list) and value else MISSING
        else:
            value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
        if value is MISSING:
            return MISSING
    return value


def schema_keys(schema_path: str | Path = DEFAULT_SCHEMA, config_path: str | Path | None = None) -> list[KeyDoc]:
    """Every key of the schema in schema order, depth first; sections (keys holding other keys)
    come before their children. Free-form mappings (a variant's `overrides`) are one key."""
    schema = yaml.load(Path(schema_path).read_text(), Loader=YAML_LOADER)
    defs = schema.get("$defs", {})
    config = yaml.load(Path(config_path).read_text(), Loader=YAML_LOADER) if config_path else {}
    keys: list[KeyDoc] = []

    def walk(properties: dict, prefix: list[str]) -> None:
        for name, node in properties.items():
            resolved = _resolve(node, defs)
            children, suffix = _children(node, defs)
            keys.append(
                KeyDoc(
                    ".".join(prefix + [name]),
                    resolved.get("description", "").strip(),
                    _kind(node, defs),
                    _default(config, prefix + [name]),
                )
            )
            if suffix == ".<name>":  # the mapping's entries themselves, one row for all names
                entry = _resolve(resolved["additionalProperties"], defs)
                keys.append(
                    KeyDoc(
                        ".".join(prefix + [name, "<name>"]),
                        entry.get("description", "").strip(),
                        _kind(entry, defs),
                        MISSING,
                    )
                )
            walk(children, prefix + (f"{name}{suffix}".split(".") if suffix else [name]))

    walk(_resolve(schema, defs)["properties"], [])
    return keys
