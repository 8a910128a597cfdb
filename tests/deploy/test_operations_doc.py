"""docs/OPERATIONS.md cannot drift from the code: its commands, settings and files exist."""

from __future__ import annotations

import argparse
import re

import pytest

from app.settings import Settings
from lookup_index.cli import _parser
from lookup_index.exceptions import REASONS
from tests.deploy.dockerfile import REPO

RUNBOOK = REPO / "docs" / "OPERATIONS.md"


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_lookup_index_command_and_option_exists() -> None:
    subcommands = _subcommands()
    used = []
    for line in _logical_lines(RUNBOOK.read_text()):
        for match in re.finditer(r"lookup-index (\w+)([^`|#]*)", line):
            command, rest = match.groups()
            if command not in subcommands:
                continue  # prose such as "lookup-index build reads..." is checked below
            parser = subcommands[command]
            nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if nested:  # `lookup-index key import ...`: the options are the action's
                action = rest.split()[0] if rest.split() else ""
                assert action in nested[0].choices, f"lookup-index {command} {action}"
                parser = nested[0].choices[action]
            options = set(re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", rest))
            known = {o for a in parser._actions for o in a.option_strings}
            assert options <= known, f"lookup-index {command}: unknown {options - known}"
            used.append(command)
    assert {"keygen", "build", "verify", "info", "check", "generate"} <= set(used)


def test_every_setting_named_exists() -> None:
    text = RUNBOOK.read_text()
    deployment_variables = set(
        re.findall(r"^([A-Z0-9_]+)=", (REPO / "deploy" / "env.example").read_text(), re.M)
    )
    for name in set(re.findall(r"\bSELFCHECK_[A-Z0-9_]+", text)):
        field = name.removeprefix("SELFCHECK_").lower()
        assert field in Settings.model_fields or name in deployment_variables, name


def _named_files() -> list[tuple[str, str]]:
    """(path, test name or "") for the repository files the runbook names in backticks.

    deploy/.env, deploy/data/ and deploy/secrets/ are made by the operator, not shipped.
    """
    pattern = r"`((?:deploy|docs|tests)/[\w./-]+?|Dockerfile)(?:::(\w+))?`"
    found = re.findall(pattern, RUNBOOK.read_text())
    operator_made = ("deploy/.env", "deploy/data/", "deploy/secrets/")
    return sorted({(path, name) for path, name in found if not path.startswith(operator_made)})


@pytest.mark.parametrize(("path", "test_name"), _named_files())
def test_every_repository_file_named_exists(path: str, test_name: str) -> None:
    assert (REPO / path).is_file(), path
    if test_name:
        assert f"def {test_name}(" in (REPO / path).read_text()


def test_the_readme_sections_it_points_to_exist() -> None:
    headings = set(re.findall(r"^#+ (.+)$", (REPO / "README.md").read_text(), re.M))
    for section in re.findall(r'README, "([^"]+)"', RUNBOOK.read_text()):
        assert section in headings, section


def test_the_rejects_reasons_listed_are_the_builders() -> None:
    reasons = RUNBOOK.read_text().split("- Reasons:", 1)[1].split("\n- ", 1)[0]
    listed = set(reasons.split("`")[1::2])
    assert listed == set(REASONS) | {"categories"}


@pytest.mark.parametrize(
    "line",
    [
        "index loaded; ready",
        "selfcheck cannot start",
        "rate-limit store unavailable",
        "key token unavailable",
        "key operations: ",
        "response floor overrun: ",
    ],
)
def test_the_log_lines_it_describes_are_the_apps(line: str) -> None:
    assert line in RUNBOOK.read_text()
    sources = "".join(p.read_text() for p in (REPO / "app").rglob("*.py"))
    assert line in sources
