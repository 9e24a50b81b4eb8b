"""The import graph runs one way: cli -> pipeline -> (io, data, train, infer, analysis) -> model
-> config. Checked on the source (every import, lazy ones inside functions included) and at
run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nwb_lfads"
HIGH = (
    "nwb_lfads.train",
    "nwb_lfads.fit",
    "nwb_lfads.transfer",
    "nwb_lfads.demo",
    "nwb_lfads.sweep",
    "nwb_lfads.cli",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``nwb_lfads`` module ``path`` imports, at the top or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m == "nwb_lfads" or m.startswith("nwb_lfads.")}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_is_read_from_the_source():
    graph = _graph()
    assert "nwb_lfads.config" in graph["nwb_lfads.model.lfads"]
    assert "nwb_lfads.train.trainer" in graph["nwb_lfads.train.loop"]
    assert any(_under(m, ["nwb_lfads.train"]) for m in graph["nwb_lfads.fit"])  # a lazy import


@pytest.mark.parametrize(
    "layer", ["nwb_lfads.model", "nwb_lfads.io", "nwb_lfads.data", "nwb_lfads.stitching"]
)
def test_lower_layers_never_import_train_pipeline_sweep_or_cli(layer):
    offenders = {
        module: sorted(m for m in imported if _under(m, HIGH))
        for module, imported in _graph().items()
        if _under(module, [layer])
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("nwb_lfads.errors", set()),
        ("nwb_lfads.selection", {"nwb_lfads.errors"}),
        ("nwb_lfads.config", {"nwb_lfads.errors", "nwb_lfads.selection"}),
        ("nwb_lfads.rundir", {"nwb_lfads.config", "nwb_lfads.errors", "nwb_lfads.selection"}),
    ],
)
def test_the_bottom_modules_import_almost_nothing_of_ours(module, allowed):
    imported = {m for m in _graph()[module] if m != "nwb_lfads"}
    names = {m.rsplit(".", 1)[0] if m.rsplit(".", 1)[0] in allowed else m for m in imported}
    assert names <= allowed


def test_importing_the_model_loads_no_training_code():
    code = (
        "import sys, nwb_lfads.model.lfads, nwb_lfads.data;"
        "print(sorted(m for m in sys.modules if m.startswith(('nwb_lfads.train', 'nwb_lfads.fit'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
