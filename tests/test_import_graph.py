"""The import graph of ``app`` and ``lookup_index``: three floors, no cycle.

A cycle makes the import order decide what works (``settings`` once imported the
limiter to validate a string, and the limiter imported ``settings``); a light module
such as the settings must stay light for the tools that read it without serving.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "lookup_index")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule; `from pkg import name` the package.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_graph_covers_the_modules_that_once_formed_a_cycle() -> None:
    graph = _graph()
    assert "app.limit_syntax" in graph["app.settings"]
    assert "app.settings" in graph["app.rate_limit"]


def test_no_import_cycle_in_app_and_lookup_index() -> None:
    try:
        list(TopologicalSorter(_graph()).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_lookup_index_never_imports_app() -> None:
    offenders = {
        name: sorted(target for target in targets if target.split(".")[0] == "app")
        for name, targets in _graph().items()
        if name.startswith("lookup_index")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("module", ["app.settings", "loadtests.config"])
def test_reading_settings_loads_no_limiter(module: str) -> None:
    """Validating the settings must not start the limiter's machinery (slowapi, redis-py)."""
    code = (
        f"import sys, {module}\n"
        "heavy = ('slowapi', 'redis', 'app.rate_limit')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
