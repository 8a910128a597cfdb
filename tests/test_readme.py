"""The README cannot drift from the code: its settings list is ``Settings``, and its
``lookup-index`` examples run, as written, on a generated export."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from app.settings import Settings
from lookup_index.cli import _parser, main
from tests.support.imports import ROOT

README = (ROOT / "README.md").read_text("utf-8")
#: What the test changes in the examples so they take seconds: fewer rows, the cheapest
#: Argon2 profile (`test`, meant for exactly this). Everything else runs as written.
FASTER = {"--rows 50000": "--rows 400", "--profile standard": "--profile test"}


def _settings_listed() -> set[str]:
    section = README.split("Settings (environment, prefix `SELFCHECK_`", 1)[1]
    section = section.split("Start with `selfcheck serve`", 1)[0]
    return {name.lower() for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", section)}


def test_the_readme_lists_every_setting_and_no_other() -> None:
    listed = _settings_listed()
    fields = set(Settings.model_fields)
    assert fields - listed == set(), "settings missing from the README"
    assert listed - fields == set(), "the README lists settings that do not exist"


def _cli_examples() -> list[tuple[list[str], list[str]]]:
    """(argv, optional arguments shown in brackets) of each example of the CLI section."""
    section = README.split("### The `lookup-index` CLI", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    examples = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("  #", 1)[0]
        for slow, fast in FASTER.items():
            line = line.replace(slow, fast)
        optional = re.findall(r"\[([^\]]+)\]", line)
        argv = shlex.split(re.sub(r"\[[^\]]+\]", "", line))
        assert argv[0] == "lookup-index", line
        examples.append((argv[1:], optional))
    return examples


def test_the_readme_cli_examples_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    examples = _cli_examples()
    assert [argv[0] for argv, _ in examples] == [
        "keygen", "generate", "build", "info", "verify", "check", "recall",
    ]  # fmt: skip
    for argv, _ in examples:
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, (argv, err)
        assert "Traceback" not in err
        if argv[0] == "check":
            assert out.split()[0] in ("affected", "not_found")
    assert (tmp_path / "index.bin").is_file()


#: Bracketed build options that run on a plain local build (``--like`` needs another
#: incident's index, ``--scheduler`` a Dask cluster: their own tests run those).
LOCAL_BUILD_OPTIONS = {"--workers", "--categories", "--column", "--encoding", "--work-dir"}


def test_the_optional_arguments_shown_in_brackets_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``build``'s bracketed options exist; the local ones run, with a value in place of
    each placeholder, on an export whose NIR column is named as the example maps it."""
    monkeypatch.chdir(tmp_path)
    examples = {argv[0]: (argv, optional) for argv, optional in _cli_examples()}
    argv, optional = examples["build"]
    known = {o for a in _build_parser()._actions for o in a.option_strings}
    groups = [shlex.split(group.replace(" N", " 1")) for group in optional]
    assert {word for group in groups for word in group if word.startswith("--")} <= known
    for command in ("keygen", "generate"):
        assert main(examples[command][0]) == 0
    export = (tmp_path / "affected.csv").read_text("utf-8")
    header, rest = export.split("\n", 1)
    (tmp_path / "affected.csv").write_bytes(
        (header.replace("nir", "NUM_SS", 1) + "\n" + rest).encode("cp1252", "replace")
    )
    local = [word for group in groups if group[0] in LOCAL_BUILD_OPTIONS for word in group]
    assert main([*argv, *local]) == 0, capsys.readouterr().err


def _build_parser() -> argparse.ArgumentParser:
    (action,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices["build"]
