"""pyproject's run-time dependencies are exactly what the API imports; the build tools are
an extra; deploy/constraints.txt pins exactly what installing the runtime brings.

So the image carries no build tool, and a new import cannot ship without its dependency.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.imports import ROOT, imported_names, modules, project_module

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
#: What the API runs: the app factory, ``selfcheck serve`` and the protocol class it names
#: to uvicorn (loaded by name, so no import statement leads to it). Every module their imports load
#: is a runtime module; the rest (the builder, the generator, the demo) runs on the build machine.
API_ENTRY_POINTS = ("app.main", "app.cli", "app.server_protocol")


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def _distributions(imported: set[str]) -> set[str]:
    by_module = metadata.packages_distributions()
    return {canonicalize_name(dist) for top in imported for dist in by_module[top]}


def _runtime_modules() -> set[str]:
    """The project modules importing the entry points loads (lazy imports not followed)."""
    found = modules()
    todo, seen = list(API_ENTRY_POINTS), set(API_ENTRY_POINTS)
    while todo:
        name = todo.pop()
        for imported in imported_names(name, found[name], module_level_only=True):
            target = project_module(imported, set(found))
            if target and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _third_party_imports() -> tuple[set[str], set[str]]:
    """Top-level third-party modules imported by runtime modules (lazily too), and by the rest."""
    runtime_modules = _runtime_modules()
    runtime: set[str] = set()
    build: set[str] = set()
    for name, path in modules().items():
        for imported in imported_names(name, path):
            top = imported.partition(".")[0]
            if not top or top in sys.stdlib_module_names or top in ("app", "lookup_index"):
                continue
            (runtime if name in runtime_modules else build).add(top)
    return runtime, build


def test_the_builder_and_the_generator_are_not_runtime_modules() -> None:
    runtime_modules = _runtime_modules()
    assert {"app.main", "app.settings", "lookup_index.reader"} <= runtime_modules
    assert not {"app.demo", "lookup_index.builder", "lookup_index.generator"} & runtime_modules


def test_runtime_dependencies_are_what_the_api_imports() -> None:
    runtime, _ = _third_party_imports()
    assert _distributions(runtime) == _names(PROJECT["dependencies"])


def test_build_tools_are_an_extra_not_the_runtime() -> None:
    _, build = _third_party_imports()
    build_tools = _distributions(build) - _names(PROJECT["dependencies"])
    assert {"faker", "rich"} <= build_tools
    assert build_tools <= _closure(PROJECT["optional-dependencies"]["build"])
    assert not _names(PROJECT["optional-dependencies"]["build"]) & _names(PROJECT["dependencies"])


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution installing these brings, as resolved in this environment."""
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(text), "") for text in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate(
            {**default_environment(), "extra": extra}
        ):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        for wanted in ["", *extras]:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            todo += [(Requirement(text), wanted) for text in metadata.requires(name) or []]
    return {name for name, _ in seen}


def test_constraints_pin_exactly_what_the_runtime_installs() -> None:
    pinned = {
        canonicalize_name(line.partition("==")[0])
        for line in CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert pinned == _closure(PROJECT["dependencies"])
