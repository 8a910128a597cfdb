"""Every load-test command the READMEs and the runner's header write down is one the
runner accepts, says what it will run, and is long enough to be judged or says it is
not; the quick one is run for real by ``test_loadtest_smoke.py``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.loadtests.test_loadtest_smoke import QUICK_COMMAND

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "loadtests/README.md", "loadtests/run.sh", "docs/BENCHMARKS.md")
#: ``VAR=value bash loadtests/run.sh --option value ...`` up to a comment or a backtick.
COMMAND = re.compile(
    r"((?:[A-Z][A-Z0-9_]*=[^\s`]+[ \t]+)*bash loadtests/run\.sh(?:[ \t]+[^\s#`(:][^\s#`:]*)*)"
)


def documented_commands() -> list[str]:
    found: list[str] = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        if name.endswith(".sh"):  # the header comment, not the usage text
            text = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        found += COMMAND.findall(text)
    return sorted(set(found))


def make_commands(target: str) -> list[str]:
    recipe = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [line for line in recipe.splitlines() if line.startswith("bash loadtests/run.sh")]


@cache
def dry_run(command: str) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assignments = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADTEST_", "SELFCHECK_"))}
    return subprocess.run(
        [*words, "--dry-run"],
        cwd=ROOT,
        env={**env, **assignments},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_documents_hold_the_commands_this_test_checks() -> None:
    commands = documented_commands()
    assert QUICK_COMMAND in commands
    assert "bash loadtests/run.sh --full" in commands
    assert make_commands("loadtest") == ["bash loadtests/run.sh"]
    assert make_commands("loadtest-full") == ["bash loadtests/run.sh --full"]


@pytest.mark.parametrize("command", documented_commands())
def test_every_documented_command_is_accepted(command: str) -> None:
    result = dry_run(command)
    assert result.returncode == 0, result.stderr
    if "--help" in command:
        assert result.stdout.startswith("usage: bash loadtests/run.sh")
        return
    assert "run.sh: dry run: would " in result.stdout
    if "--prepare-only" not in command:
        assert "the steady rate is judged from" in result.stdout


def test_the_default_run_is_long_enough_to_judge_every_threshold() -> None:
    for command in ("bash loadtests/run.sh", "bash loadtests/run.sh --full"):
        out = dry_run(command).stdout
        assert "this run has 60" in out, out
        assert "too short" not in out


def test_a_short_run_is_told_it_will_not_be_judged() -> None:
    out = dry_run(QUICK_COMMAND).stdout
    assert "15 s is too short, it will say 'not judged' (judged from --duration" in out


def test_the_full_run_is_the_million_record_one() -> None:
    assert "would generate 1000000 records and build a fast-profile index" in dry_run(
        "bash loadtests/run.sh --full"
    ).stdout.replace(",", "")


def test_bad_arguments_exit_2_with_one_line() -> None:
    result = dry_run("bash loadtests/run.sh --rows many")
    assert result.returncode == 2
    assert result.stderr.strip() == "run.sh: --rows must be a whole number"
