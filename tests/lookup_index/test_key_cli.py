"""``lookup-index`` with the key in a real SoftHSM2 token: keygen, import, build, destroy."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookup_index.cli import main
from lookup_index.pepper import generate_pepper_file
from tests.app.helpers import run_refusal
from tests.lookup_index.conftest import Built, Generated
from tests.lookup_index.helpers import PEPPER
from tests.lookup_index.test_cli import assert_one_line_error, run
from tests.support.servers import free_port
from tests.support.softhsm import SoftHsm


@pytest.fixture
def label(softhsm: SoftHsm) -> Iterator[str]:
    name = softhsm.new_label()
    yield name
    main(["key", "destroy", *softhsm.cli_args(name), "--yes"])  # if the test left it


def _probes(generated: Generated) -> list[tuple[str, list[str]]]:
    chosen = [p for p in generated.probes if p.expected == "affected"][:3]
    chosen += [p for p in generated.probes if p.expected == "not_found"][:3]
    return [
        (p.expected, ["--nir", p.nir, "--birth-date", p.birth_date, "--last-name", p.last_name])
        for p in chosen
    ]


def test_keygen_in_the_token_then_build_verify_check(
    softhsm: SoftHsm,
    label: str,
    generated: Generated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = ["--key-backend", "pkcs11", *softhsm.cli_args(label)]
    code, out, _ = run(capsys, "keygen", "--pkcs11", *softhsm.cli_args(label))
    assert code == 0
    assert "never extractable" in out
    index = tmp_path / "index.bin"
    # Two workers: they stretch, the parent seals through the token.
    build = ("build", "--input", generated.export, "--out", index, "--profile", "test")
    code, _, _ = run(capsys, *build, "--workers", "2", "--quiet", *token)
    assert code == 0
    assert run(capsys, "verify", index, *token)[0] == 0
    for expected, query in _probes(generated):
        code, out, _ = run(capsys, "check", "--index", index, *token, *query)
        assert (code, out.split()[0]) == (0, expected)


def test_an_imported_pepper_opens_the_indexes_built_with_its_file(
    softhsm: SoftHsm,
    label: str,
    built: Built,
    generated: Generated,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "key", "import", "--key-file", key_file, *softhsm.cli_args(label))
    assert code == 0
    assert "imported" in out
    assert PEPPER.hex() not in out
    token = ["--key-backend", "pkcs11", *softhsm.cli_args(label)]
    assert run(capsys, "verify", built.index, *token)[0] == 0
    for _, query in _probes(generated):
        by_token = run(capsys, "check", "--index", built.index, *token, *query)
        by_file = run(capsys, "check", "--index", built.index, "--key-file", key_file, *query)
        assert by_token == by_file


def test_after_key_destroy_build_verify_and_serve_all_fail(
    softhsm: SoftHsm,
    label: str,
    built: Built,
    generated: Generated,
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = ["--key-backend", "pkcs11", *softhsm.cli_args(label)]
    assert run(capsys, "key", "import", "--key-file", key_file, *softhsm.cli_args(label))[0] == 0
    assert run(capsys, "verify", built.index, *token)[0] == 0
    assert_one_line_error(
        *run(capsys, "key", "destroy", *softhsm.cli_args(label)), "add --yes to confirm"
    )
    code, out, _ = run(capsys, "key", "destroy", *softhsm.cli_args(label), "--yes")
    assert code == 0
    assert "destroyed 1 object" in out

    gone = "no key labelled"
    assert_one_line_error(*run(capsys, "verify", built.index, *token), gone)
    _, query = _probes(generated)[0]
    assert_one_line_error(*run(capsys, "check", "--index", built.index, *token, *query), gone)
    build = ("build", "--input", generated.export, "--out", tmp_path / "new.bin", *token)
    assert_one_line_error(*run(capsys, *build, "--profile", "test", "--quiet"), gone)
    assert not (tmp_path / "new.bin").exists()
    code, output = run_refusal(
        [sys.executable, "-m", "app", "serve"],
        {
            **softhsm.env(label),
            "SELFCHECK_INDEX_PATH": str(built.index),
            "SELFCHECK_ALLOW_TEST_PROFILE": "true",
            "SELFCHECK_PORT": str(free_port()),
        },
    )
    assert code != 0
    assert "Traceback" not in output
    assert next(line for line in output.splitlines() if "cannot start" in line).endswith(
        f"no key labelled {label!r} in token 'selfcheck-tests'"
    )


def test_token_commands_fail_in_one_line(
    softhsm: SoftHsm, label: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k.key"
    generate_pepper_file(key)
    no_pin = ["--token-label", "selfcheck-tests", "--key-label", label]
    assert_one_line_error(*run(capsys, "keygen", "--pkcs11", *no_pin), "--pin-file")
    assert_one_line_error(*run(capsys, "keygen"), "--out")
    bad_pin = [*no_pin, "--pin-file", tmp_path / "absent.pin"]
    assert_one_line_error(*run(capsys, "key", "import", "--key-file", key, *bad_pin), "PIN file")
    run(capsys, "keygen", "--pkcs11", *softhsm.cli_args(label))
    assert_one_line_error(
        *run(capsys, "key", "import", "--key-file", key, *softhsm.cli_args(label)),
        "already holds",
    )
    assert_one_line_error(
        *run(capsys, "verify", tmp_path / "i.bin", "--key-backend", "file"), "index file"
    )
