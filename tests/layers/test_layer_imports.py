"""The layers hold: the core imports no Lightning, Hydra or application code; the demo world and
the application layer import no entry point. Read from the source (every import statement,
top-level or inside a function), so a lazy import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"train", "edit", "evaluate", "demo", "app"}
FORBIDDEN = {
    # the core: methods and their maths only
    "editing": {
        "lightning",
        "pytorch_lightning",
        "hydra",
        "omegaconf",
        "editing_app",
        "demo_world",
        "lightning_modules",
        "datamodules",
        "callbacks",
        "benchmarks",
        *ENTRY_POINTS,
    },
    # the demo world sits on the core, beside the shells, below the application layer
    "demo_world": {"editing_app", "benchmarks", *ENTRY_POINTS},
    # the application layer is what the entry points share: it never imports one
    "editing_app": {"benchmarks", *ENTRY_POINTS},
}


def imported_top_levels(path: Path) -> set[str]:
    """The first component of every module an import statement in `path` names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below_it(package):
    modules = _modules(package)
    assert modules, f"no modules found under {package}/"
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) & FORBIDDEN[package])
        for path in modules
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_the_scan_sees_lazy_imports(tmp_path):
    # The check is not vacuous: an import inside a function is found.
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    import lightning.pytorch as pl\n    from hydra import compose\n"
    )
    assert imported_top_levels(module) == {"lightning", "hydra"}
