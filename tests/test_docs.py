"""The documentation: every configuration key described, the generated pages current, the README short
and its commands working as typed."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from lowdensity.docs.render import render_docs
from lowdensity.docs.schema import schema_keys

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def leaf_paths(node, prefix=()):
    """Every key path of a YAML mapping, list items as `key[]` (the schema walker's notation)."""
    for key, value in node.items():
        path = prefix + (str(key),)
        yield ".".join(path)
        if isinstance(value, dict):
            yield from leaf_paths(value, path)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                yield from leaf_paths(item, path[:-1] + (f"{key}[]",))


def test_every_schema_key_has_a_description(repo):
    keys = schema_keys(repo / "src/lowdensity/config.schema.yaml", repo / "config.yaml")
    undescribed = [k.path for k in keys if not k.description]
    assert not undescribed, f"schema keys without a description: {undescribed}"


def test_the_reference_lists_every_key_of_every_configuration(repo):
    """The schema walker reaches every key the configurations set (so the test above sees them all),
    `overrides` mappings (and fidelity_study.discriminator) and resources per stage being one entry each."""
    listed = {k.path for k in schema_keys(repo / "src/lowdensity/config.schema.yaml")}
    for config in [repo / "config.yaml", *sorted((repo / "configs").glob("*.yaml"))]:
        for path in leaf_paths(yaml.safe_load(config.read_text()) or {}):
            if ".overrides." in path or path.startswith("fidelity_study.discriminator."):
                continue  # keys of `discriminator`, listed there
            path = re.sub(r"^resources\.\w+", "resources.<name>", path)
            assert path in listed, f"{config.name}: {path} is not in the configuration reference"


def test_a_key_without_a_description_is_found(tmp_path):
    """The walker follows $ref, allOf, list items and free-name mappings, and reports what lacks a description."""
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        yaml.safe_dump(
            {
                "$defs": {
                    "inner": {
                        "type": "object",
                        "properties": {"x": {"type": "integer", "description": "an x"}, "y": {"type": "number"}},
                    }
                },
                "type": "object",
                "properties": {
                    "a": {"allOf": [{"$ref": "#/$defs/inner"}], "description": "section a"},
                    "b": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "c": {
                        "type": "object",
                        "additionalProperties": {"$ref": "#/$defs/inner"},
                        "description": "per name",
                    },
                },
            }
        )
    )
    keys = {k.path: k.description for k in schema_keys(schema)}
    assert keys == {
        "a": "section a",
        "a.x": "an x",
        "a.y": "",
        "b": "",
        "b[].name": "",
        "c": "per name",
        "c.<name>": "",
        "c.<name>.x": "an x",
        "c.<name>.y": "",
    }


def test_committed_pages_that_need_no_run_are_current(repo, tmp_path):
    """docs/generated/{configuration,performance,gpu_hours}.md equal a fresh rendering: a schema or
    benchmark edit without `make docs` fails here."""
    render_docs(pages=["configuration", "performance", "gpu_hours"], repo=repo, out=tmp_path)
    for name in ("configuration", "performance", "gpu_hours"):
        assert (tmp_path / f"{name}.md").read_text() == (repo / f"docs/generated/{name}.md").read_text(), (
            f"docs/generated/{name}.md is stale: run `make docs` and commit it"
        )


def test_readme_is_short_and_about_the_repository(repo):
    text = (repo / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "../shared" not in text and "SPEC.md" not in text
    assert not re.search(r"\bissue \d+", text, re.I), "the README cites an issue number"
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not link.startswith(("http://", "https://")):
            assert (repo / link).exists(), f"README links to {link}, which is not in the repository"


def readme_commands(repo: Path) -> list[str]:
    """Every command line of the README's fenced `make`/`snakemake` blocks, without its comment."""
    text = (repo / "README.md").read_text()
    lines = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith(("make ", "snakemake")):
                lines.append(command)
    return lines


def test_readme_commands_work_as_typed(repo):
    """Each Snakemake command of the README plans in the repository as typed (a dry run), each `make`
    target exists; the paper-scale plan works although the ResNet-50 weights are absent."""
    commands = readme_commands(repo)
    assert any("--profile slurm" in c for c in commands) and any(c.startswith("make run") for c in commands)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "make":
            result = subprocess.run(
                ["make", "-n", *words[1:]], cwd=repo, capture_output=True, text=True, env=ENV, timeout=60
            )
        else:
            result = subprocess.run([*words, "-n"], cwd=repo, capture_output=True, text=True, env=ENV, timeout=600)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


def test_mkdocs_configuration_lists_every_page(repo):
    """Each hand-written page is in the navigation, and each navigation entry exists."""
    config = yaml.safe_load((repo / "mkdocs.yml").read_text())
    pages = [next(iter(entry.values())) for entry in config["nav"]]
    for page in pages:
        assert (repo / "docs" / page).exists() or page.startswith("generated/"), page
    written = {p.relative_to(repo / "docs").as_posix() for p in (repo / "docs").glob("*.md")}
    assert written <= set(pages), f"pages missing from the navigation: {written - set(pages)}"


def test_missing_weights_warn_in_a_dry_run_and_stop_a_real_run(repo, tmp_path):
    """A dry run plans and names the missing file; a real run refuses before any job, writing nothing."""
    override = tmp_path / "resnet.yaml"
    override.write_text(
        "evaluation:\n  extractors:\n    - {name: efficientnet_lite0, input_size: 32}\n"
        f"    - {{name: resnet50, timm_name: resnet50, weights: {tmp_path}/r50.pth, input_size: 32}}\n"
    )
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    base = [snakemake, "-s", str(repo / "Snakefile"), "-d", str(tmp_path / "work"), "--cores", "1"]
    configs = ["--configfile", str(repo / "configs/tiny.yaml"), str(override)]  # last: it takes every word after it
    dry = subprocess.run([*base, "-n", *configs], capture_output=True, text=True, env=ENV, timeout=300)
    message = f"config key 'evaluation.extractors[1].weights': {tmp_path}/r50.pth not found: download"
    assert dry.returncode == 0 and "Job stats" in dry.stdout + dry.stderr
    assert f"warning: {message}" in dry.stderr
    real = subprocess.run(
        [*base, "results/data/val.npz", *configs], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert real.returncode != 0
    assert "missing local files, nothing was run" in real.stdout + real.stderr and message in real.stdout + real.stderr
    assert not (tmp_path / "work/results").exists()
