"""The import graph of ``app`` and ``lookup_index``: three floors, no cycle.

A cycle makes the import order decide what works (``settings`` once imported the
limiter to validate a string, and the limiter imported ``settings``); a light module
such as the settings must stay light for the tools that read it without serving.
"""

from __future__ import annotations

import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.support.imports import ROOT, imported_names, modules, project_module


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports."""
    found = {project_module(imported, known) for imported in imported_names(name, path)}
    return {target for target in found if target and target != name}


def _graph() -> dict[str, set[str]]:
    found = modules()
    return {name: _imports(name, path, set(found)) for name, path in found.items()}


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


LIMITER = ("slowapi", "redis", "app.rate_limit")
BUILD_TOOLS = ("faker", "rich")


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # Validating the settings must not start the limiter's machinery.
        ("app.settings", LIMITER),
        ("loadtests.config", LIMITER),
        # The API host has no [build] extra: serving must not need it.
        ("app.main", BUILD_TOOLS),
        ("app.cli", BUILD_TOOLS),
        ("lookup_index.cli", BUILD_TOOLS),
    ],
)
def test_a_module_loads_only_what_it_needs(module: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}\n"
        f"forbidden = {forbidden!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in forbidden or m in forbidden))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
