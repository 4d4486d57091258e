"""The package's layers: imports go one way, from the stages the rules call down to the core.

    cli, docs  →  stages  →  figures  →  guidance, metrics  →  networks  →  config  →  core  →  base

`base` is the modules every layer shares (io, data, layout, runtime); `config` validates against
the chain's respacing rules, so it sits above the core. A module may import
its own layer and the layers below it, never one above: the diffusion chain knows nothing of
networks, a metric nothing of files of a run, a figure nothing of how its numbers were made.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "lowdensity"
LAYERS = [
    {"io", "data", "layout", "runtime"},
    {"core"},
    {"config"},
    {"networks"},
    {"guidance", "metrics"},
    {"figures"},
    {"stages"},
    {"cli", "docs"},
]


def layer_of(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else ""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def imports_of(path: Path) -> set[str]:
    """Every lowdensity module the file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lowdensity."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lowdensity."))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_go_one_way():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "lowdensity":
            continue
        for imported in imports_of(path):
            if layer_of(imported) > layer_of(name):
                upward.append(f"{name} imports {imported}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name != "lowdensity":
            layer_of(name)  # StopIteration names a module outside every layer


def test_relative_imports_are_not_used():
    """Absolute imports: a moved module's importers show where it now lives."""
    relative = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(path.read_text())))
    ]
    assert not relative


def test_no_function_takes_more_than_eight_positional_parameters():
    """Past eight, a call reads as a row of values: the rest are keyword-only (or travel as a
    dataclass, as a guided cell does)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                names = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(names) > 8:
                    long.append(f"{module_name(path)}.{node.name}: {len(names)}")
    assert not long


def test_every_stage_is_a_documented_keyword_only_function():
    """`lowdensity <stage> --help` is built from the stage's signature and docstring: each of its
    arguments is keyword-only, typed and described."""
    import inspect

    from lowdensity.cli import STAGES, stage_function

    for name in STAGES:
        function = stage_function(name)
        doc = inspect.getdoc(function) or ""
        for parameter in inspect.signature(function).parameters.values():
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {parameter.name} is positional"
            assert parameter.annotation is not inspect.Parameter.empty, f"{name}: {parameter.name} has no type"
            assert f"    {parameter.name}: " in doc, f"{name}: {parameter.name} is not described in Args:"
