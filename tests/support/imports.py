"""The import statements of the project's packages, read with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("app", "lookup_index")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of ``app`` and ``lookup_index``."""
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _statements(tree: ast.Module, module_level_only: bool) -> Iterator[ast.AST]:
    if not module_level_only:
        yield from ast.walk(tree)
        return
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If):
            # `if TYPE_CHECKING:` imports are for the type checker, never run.
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                todo += node.body
            todo += node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                todo += handler.body


def imported_names(name: str, path: Path, *, module_level_only: bool = False) -> Iterator[str]:
    """Every dotted name ``name`` imports: wherever the statement is (lazy imports too), or
    only what importing the module runs.

    ``from pkg import x`` yields ``pkg.x`` (x may be a submodule) and ``pkg``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _statements(ast.parse(path.read_text("utf-8")), module_level_only):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield from (f"{base}.{alias.name}" for alias in node.names)
            yield base


def project_module(imported: str, known: set[str]) -> str | None:
    """The project module an imported dotted name is (or is in), if any."""
    while imported and imported not in known:
        imported = imported.rpartition(".")[0]
    return imported or None
