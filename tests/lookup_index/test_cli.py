"""``lookup-index``: each command in-process, the whole pipeline in real subprocesses.

Operators read this tool's output in terminals and CI logs, so every failure
must be one line without a traceback, and nothing it prints may carry an
identity or the key.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lookup_index.cli import BUILD_EXTRA_MODULES, EXIT_ERROR, EXIT_INVALID_INPUT, main
from lookup_index.generator import read_probes
from lookup_index.reader import IndexReader
from tests.lookup_index.helpers import OTHER_PEPPER, keyed, write_export, wrong_key

ANNE = keyed("2700575123045")
BRUNO = keyed("1820269123456")


@dataclass(frozen=True)
class Setup:
    directory: Path
    export: Path
    key: Path
    index: Path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == EXIT_ERROR
    assert out == ""
    assert err.startswith("lookup-index: error: ")
    assert err.count("\n") == 1
    assert err.endswith("\n")
    assert "Traceback" not in err
    assert fragment in err


@pytest.fixture
def setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Setup:
    export = write_export(
        tmp_path / "export.csv",
        [
            (ANNE, "1970-05-02", "Lefèvre", "Durand", "identity;nir;email"),
            (BRUNO, "11/02/1982", "Bernard", "", ""),
            ("123", "1982-02-11", "Broken", "", ""),
        ],
    )
    key, index = tmp_path / "test.key", tmp_path / "index.bin"
    assert run(capsys, "keygen", "--out", key)[0] == 0
    code, out, err = run(
        capsys,
        *("build", "--input", export, "--key-file", key, "--out", index),
        *("--profile", "test", "--workers", "1", "--quiet"),
        *("--incident", "inc-42", "--incident-label", "Incident de test"),
        *("--max-reject-rate", "50"),  # the broken row is a third of this export
    )
    assert (code, err) == (0, "")
    assert f"built {index}" in out
    assert "rejects: 1 of 3 rows (33.33%): nir_format 1 (33.33%)" in out
    return Setup(tmp_path, export, key, index)


def test_keygen_writes_a_private_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "new.key"
    code, out, _ = run(capsys, "keygen", "--out", key)
    assert code == 0
    assert str(key) in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    content = key.read_bytes()
    assert len(content) == 32
    assert content.hex() not in out
    assert_one_line_error(*run(capsys, "keygen", "--out", key), "refusing to overwrite")
    assert key.read_bytes() == content


def test_build_summary_prints_counts_not_identities(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        *("build", "--input", setup.export, "--key-file", setup.key),
        *("--out", setup.index, "--profile", "test", "--workers", "1"),
        *("--max-reject-rate", "34"),
    )
    assert code == 0
    assert "indexed_keys: 3" in out  # two rows, one with a usage name
    assert "rejected_total: 1" in out
    assert "rejects report:" in out
    for value in (ANNE, BRUNO, "Lefèvre", "LEFEVRE", "Durand", "Bernard", "Broken", "123,"):
        assert value not in out
    assert (
        setup.index.with_name("index.bin.rejects.csv").read_text() == "row,reason\n3,nir_format\n"
    )


def test_info_prints_the_header_without_the_key(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", setup.index)
    assert code == 0
    info = json.loads(out)
    assert info["count"] == 3
    assert info["format_version"] == 2
    assert info["build"]["profile"]["name"] == "test"
    assert re.fullmatch("[0-9a-f]{16}", info["build"]["id"])
    assert info["params_id"] == info["build"]["params_id"]
    # Two keys of two records: one birth name each, and one usage name.
    assert info["records"] == {
        "distinct": 2,
        "variant_keys": {"birth_name": 2, "usage_name": 1, "particles_glued": 0, "name_part": 0},
    }
    assert info["signature"] == {"present": False}
    assert info["incident"] == {
        "id": "inc-42",
        "label": "Incident de test",
        "categories": ["identity", "nir", "birth_date"],
    }
    pepper = setup.key.read_bytes()
    assert pepper.hex() not in out.lower()
    assert pepper.decode("latin-1") not in out


def test_verify(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", setup.index, "--key-file", setup.key)
    assert code == 0
    assert out.startswith("ok: 3 keys")

    wrong = setup.directory / "wrong.key"
    wrong.write_bytes(OTHER_PEPPER)
    assert_one_line_error(
        *run(capsys, "verify", setup.index, "--key-file", wrong), "does not match this index"
    )

    data = bytearray(setup.index.read_bytes())
    data[-(32 + 3 + 10)] ^= 0x01  # inside the digests (3 keys): only the checksum can tell
    setup.index.write_bytes(data)
    assert_one_line_error(
        *run(capsys, "verify", setup.index, "--key-file", setup.key), "checksum mismatch"
    )


@pytest.mark.parametrize(
    ("nir", "born", "name", "expected"),
    [
        (ANNE, "1970-05-02", "Lefèvre", "affected identity,nir,email"),
        ("2 70 05 75 123 045 " + ANNE[13:], "1970-05-02", "lefevre", "affected identity,nir,email"),
        (ANNE, "1970-05-02", "DURAND", "affected identity,nir,email"),  # usage name
        (BRUNO, "1982-02-11", "Bernard", "affected identity,nir,birth_date"),
        (ANNE, "1970-05-03", "Lefèvre", "not_found"),
        (BRUNO, "1982-02-11", "Bernardi", "not_found"),
    ],
)
def test_check(
    setup: Setup, capsys: pytest.CaptureFixture[str], nir: str, born: str, name: str, expected: str
) -> None:
    argv = ("check", "--index", setup.index, "--key-file", setup.key)
    code, out, err = run(capsys, *argv, "--nir", nir, "--birth-date", born, "--last-name", name)
    assert (code, out, err) == (0, expected + "\n", "")


@pytest.mark.parametrize(
    ("nir", "born", "name", "reason"),
    [
        ("2700575123", "1970-05-02", "Lefèvre", "nir_format"),
        (wrong_key("2700575123045"), "1970-05-02", "Lefèvre", "nir_key"),
        (keyed("5700575123045"), "1970-05-02", "Lefèvre", "nir_range"),
        (ANNE, "02/05/1970", "Lefèvre", "birth_date"),  # the API takes ISO dates only
        (ANNE, "1970-05-02", "'-'", "last_name"),
    ],
)
def test_check_invalid_input_prints_only_the_reason(
    setup: Setup, capsys: pytest.CaptureFixture[str], nir: str, born: str, name: str, reason: str
) -> None:
    argv = ("check", "--index", setup.index, "--key-file", setup.key)
    code, out, err = run(capsys, *argv, "--nir", nir, "--birth-date", born, "--last-name", name)
    assert (code, out, err) == (EXIT_INVALID_INPUT, "", reason + "\n")


def _error_cases(setup: Setup) -> dict[str, tuple[list[str | Path], str]]:
    d = setup.directory
    (d / "wrong.key").write_bytes(OTHER_PEPPER)
    (d / "short.key").write_bytes(b"0123")
    (d / "truncated.bin").write_bytes(setup.index.read_bytes()[:-1])
    (d / "latin1.csv").write_bytes(
        f"nir,birth_date,last_name\n{ANNE},1970-05-02,Lef".encode() + b"\xe8vre\n"
    )
    check: list[str | Path] = ["--nir", ANNE, "--birth-date", "1970-05-02"]
    check += ["--last-name", "Lefèvre"]
    build: list[str | Path] = ["build", "--input", setup.export, "--key-file", setup.key]
    build += ["--profile", "test"]
    return {
        "info, missing index": (["info", d / "absent.bin"], "index file not found"),
        "info, not an index": (["info", setup.export], "bad magic"),
        "verify, missing key": (["verify", setup.index, "--key-file", d / "no.key"], "key file"),
        "verify, short key": (["verify", setup.index, "--key-file", d / "short.key"], "32-byte"),
        "check, wrong key": (
            ["check", "--index", setup.index, "--key-file", d / "wrong.key", *check],
            "does not match this index",
        ),
        "check, truncated index": (
            ["check", "--index", d / "truncated.bin", "--key-file", setup.key, *check],
            "truncated or corrupt",
        ),
        "check, missing index": (
            ["check", "--index", d / "absent.bin", "--key-file", setup.key, *check],
            "not found",
        ),
        "build, undecodable csv": (
            [*build[:2], d / "latin1.csv", *build[3:], "--out", d / "x.bin"],
            "not valid utf-8-sig text; pass --encoding",
        ),
        "build, missing input": (
            [*build[:2], d / "absent.csv", *build[3:], "--out", d / "x.bin"],
            "input file not found",
        ),
        "build, missing column": (
            [*build, "--out", d / "x.bin", "--column", "nir=NUM_SS"],
            "no column 'num_ss' for nir",
        ),
        "build, bad column spec": (
            [*build, "--out", d / "x.bin", "--column", "nir"],
            "bad --column",
        ),
        "build, unknown category": (
            [*build, "--out", d / "x.bin", "--categories", "identity,gossip"],
            "unknown category gossip",
        ),
        "build, missing output dir": ([*build, "--out", d / "no" / "x.bin"], "output directory"),
        "generate, missing output dir": (
            ["generate", "--rows", "5", "--out", d / "no" / "e.csv"],
            "No such file or directory",
        ),
    }


ERROR_CASES = [
    "info, missing index",
    "info, not an index",
    "verify, missing key",
    "verify, short key",
    "check, wrong key",
    "check, truncated index",
    "check, missing index",
    "build, undecodable csv",
    "build, missing input",
    "build, missing column",
    "build, bad column spec",
    "build, unknown category",
    "build, missing output dir",
    "generate, missing output dir",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_are_one_line_without_traceback(
    setup: Setup, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    argv, fragment = _error_cases(setup)[case]
    before = sorted(p.name for p in setup.directory.iterdir())
    assert_one_line_error(*run(capsys, *argv), fragment)
    # A failed command leaves no partial output behind.
    assert sorted(p.name for p in setup.directory.iterdir()) == before


def test_build_with_column_mapping_and_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write_export(
        tmp_path / "export.csv",
        [(ANNE, "02/05/1970", "Lefèvre")],
        header=("NUM_SS", "DATE_NAISS", "NOM"),
        delimiter=";",
        encoding="cp1252",
    )
    key, index = tmp_path / "k.key", tmp_path / "i.bin"
    run(capsys, "keygen", "--out", key)
    code, _, err = run(
        capsys,
        *("build", "--input", export, "--key-file", key, "--out", index, "--profile", "test"),
        *("--column", "nir=NUM_SS", "--column", "birth_date=DATE_NAISS"),
        *("--column", "last_name=NOM"),
        *("--encoding", "cp1252", "--workers", "1"),
    )
    assert (code, err) == (0, "")
    argv = ("check", "--index", index, "--key-file", key, "--nir", ANNE)
    code, out, _ = run(capsys, *argv, "--birth-date", "1970-05-02", "--last-name", "LEFEVRE")
    assert (code, out) == (0, "affected identity,nir,birth_date\n")


def test_generate_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        code, out, _ = run(
            capsys, "generate", "--rows", "150", "--seed", "9", "--out", tmp_path / f"{name}.csv",
            "--probes", tmp_path / f"{name}.probes.csv", "--probe-count", "20",
        )  # fmt: skip
        assert code == 0
        assert "wrote 150 rows" in out
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.probes.csv").read_bytes() == (tmp_path / "b.probes.csv").read_bytes()


# --- real processes -----------------------------------------------------------------------


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("lookup-index")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lookup_index.cli"]


def _spawn(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


def test_pipeline_in_real_processes(tmp_path: Path) -> None:
    cli = _console_script()
    steps: list[list[str | Path]] = [
        ["keygen", "--out", "k.key"],
        ["generate", "--rows", "300", "--seed", "4", "--out", "e.csv", "--probes", "p.csv"],
        [
            *("build", "--input", "e.csv", "--key-file", "k.key", "--out", "i.bin"),
            *("--profile", "test", "--workers", "2"),
        ],
        ["verify", "i.bin", "--key-file", "k.key"],
    ]
    for step in steps:
        done = _spawn([*cli, *step], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    probes = read_probes(tmp_path / "p.csv")
    for expected in ("affected", "not_found", "invalid"):
        probe = next(p for p in probes if p.expected == expected)
        done = _spawn(
            [
                *(*cli, "check", "--index", "i.bin", "--key-file", "k.key", "--nir", probe.nir),
                *("--birth-date", probe.birth_date, "--last-name", probe.last_name),
            ],
            tmp_path,
        )
        if expected == "invalid":
            assert (done.returncode, done.stdout, done.stderr) == (2, "", probe.reason + "\n")
        else:
            words = f"affected {','.join(probe.categories)}" if probe.categories else "not_found"
            assert (done.returncode, done.stdout, done.stderr) == (0, words + "\n", "")


def test_error_in_a_real_process_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "i.bin").write_bytes(b"PBSCIDX\n" + bytes(100))
    done = _spawn([sys.executable, "-m", "lookup_index.cli", "info", "i.bin"], tmp_path)
    assert done.returncode == EXIT_ERROR
    assert done.stdout == ""
    assert done.stderr.startswith("lookup-index: error: ")
    assert done.stderr.count("\n") == 1


def test_check_answers_every_probe_of_a_50000_row_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's acceptance run: generate 50,000 rows, build, and ask `check` every probe."""
    export, probes, key, index = (tmp_path / n for n in ("a.csv", "p.csv", "k.key", "i.bin"))
    assert run(capsys, "generate", "--rows", "50000", "--seed", "5", "--out", export,
               "--probes", probes, "--probe-count", "600")[0] == 0  # fmt: skip
    assert run(capsys, "keygen", "--out", key)[0] == 0
    code, _, err = run(
        capsys, "build", "--input", export, "--key-file", key, "--out", index,
        "--profile", "test", "--workers", "2", "--quiet",
    )  # fmt: skip
    assert (code, err) == (0, "")
    checked = {"affected": 0, "not_found": 0, "invalid": 0}
    for probe in read_probes(probes):
        code, out, err = run(
            capsys, "check", "--index", index, "--key-file", key, "--nir", probe.nir,
            "--birth-date", probe.birth_date, "--last-name", probe.last_name,
        )  # fmt: skip
        if probe.expected == "invalid":
            assert (code, out, err) == (EXIT_INVALID_INPUT, "", probe.reason + "\n")
        elif probe.expected == "affected":
            assert code == 0
            assert out.split() == ["affected", ",".join(probe.categories)]
        else:
            assert (code, out) == (0, "not_found\n")
        checked[probe.expected] += 1
    assert min(checked.values()) > 100, checked


@pytest.mark.parametrize("module", ["faker", "rich"])
def test_without_the_build_tools_generate_and_build_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    """An API host installs no [build] extra: the command says what to install."""
    assert module in BUILD_EXTRA_MODULES
    for name in [module, *(name for name in sys.modules if name.startswith(module + "."))]:
        monkeypatch.setitem(sys.modules, name, None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "lookup_index.generator", raising=False)
    write_export(tmp_path / "e.csv", [])
    (tmp_path / "k.key").write_bytes(bytes(32))
    argv = (
        ["generate", "--rows", "10", "--out", tmp_path / "g.csv"]
        if module == "faker"
        else [
            *("build", "--input", tmp_path / "e.csv", "--key-file", tmp_path / "k.key"),
            *("--out", tmp_path / "i.bin", "--profile", "test"),
        ]
    )
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, f"needs the build tools ({module})")
    assert not (tmp_path / "g.csv").exists()
    assert not (tmp_path / "i.bin").exists()


def test_build_like_shares_salt_and_profile(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another incident built --like the first: same params_id, so one Argon2id per query.
    other = setup.directory / "other.bin"
    build = ["build", "--input", setup.export, "--key-file", setup.key, "--out", other]
    code, _, err = run(
        capsys, *build, "--like", setup.index, "--incident", "inc-43", "--quiet",
        "--max-reject-rate", "50",
    )  # fmt: skip
    assert (code, err) == (0, "")
    params = set()
    for index in (setup.index, other):
        code, out, _ = run(capsys, "info", index)
        assert code == 0
        params.add(json.loads(out)["params_id"])
    assert len(params) == 1
    with IndexReader.open(setup.index) as first, IndexReader.open(other) as second:
        assert first.header.params_id == second.header.params_id
        assert first.header.profile == second.header.profile
        assert first.header.build_id != second.header.build_id
        assert second.header.incident_id == "inc-43"


def test_build_like_refusals(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    build = ["build", "--input", setup.export, "--out", setup.directory / "o.bin"]
    other_key = setup.directory / "other.key"
    other_key.write_bytes(OTHER_PEPPER)
    assert_one_line_error(
        *run(capsys, *build, "--key-file", other_key, "--like", setup.index), "key-check"
    )
    assert_one_line_error(
        *run(capsys, *build, "--key-file", setup.key, "--like", setup.index, "--profile", "fast"),
        "--profile fast differs from --like's test",
    )
    assert not (setup.directory / "o.bin").exists()


def test_a_wrong_date_column_stops_the_build_on_the_reject_rate(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong column mapping must not go live as an index with holes."""
    rows = [(ANNE, "Martin", "1970-05-02", "02/05/1970")] * 40
    export = write_export(
        setup.directory / "mapped.csv", rows, header=("nir", "last_name", "entry", "born")
    )
    out = setup.directory / "wrong.bin"
    before = sorted(p.name for p in setup.directory.iterdir())
    code, stdout, err = run(
        capsys,
        *("build", "--input", export, "--key-file", setup.key, "--out", out),
        *("--profile", "test", "--workers", "1", "--quiet"),
        *("--column", "birth_date=last_name"),  # the operator's slip: names as dates
    )
    assert_one_line_error(code, stdout, err, "100.00% of 40 rows rejected")
    assert "--max-reject-rate 1%" in err
    assert "birth_date 40 (100.00%)" in err
    assert "Martin" not in err
    assert sorted(p.name for p in setup.directory.iterdir()) == before  # no index, no temp file
    # Raised knowingly, the same mapping still finds no valid row: nothing written either.
    code, stdout, err = run(
        capsys,
        *("build", "--input", export, "--key-file", setup.key, "--out", out),
        *("--profile", "test", "--workers", "1", "--quiet", "--max-reject-rate", "100"),
        *("--column", "birth_date=last_name"),
    )
    assert_one_line_error(code, stdout, err, "no valid row")
    code, stdout, err = run(
        capsys,
        *("build", "--input", export, "--key-file", setup.key, "--out", out),
        *("--profile", "test", "--workers", "1", "--quiet", "--column", "birth_date=born"),
    )
    assert (code, err) == (0, "")
    assert "rejects: 0 of 40 rows (0.00%)" in stdout


def test_check_takes_an_unknown_day_or_month(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write_export(
        tmp_path / "e.csv",
        [
            (ANNE, "00/00/1970", "de La Fontaine", "", ""),
            (BRUNO, "0/2/1982 00:00:00", "Nâ", "", ""),
        ],
    )
    key, index = tmp_path / "k.key", tmp_path / "i.bin"
    run(capsys, "keygen", "--out", key)
    code, _, err = run(
        capsys,
        *("build", "--input", export, "--key-file", key, "--out", index),
        *("--profile", "test", "--workers", "1", "--quiet"),
    )
    assert (code, err) == (0, "")
    for nir, born, name, expected in [
        (ANNE, "1970-00-00", "Delafontaine", "affected"),
        (ANNE, "1970-05-00", "Fontaine", "not_found"),  # 00 matches only what is unknown
        (ANNE, "1970-05-02", "Fontaine", "not_found"),
        (BRUNO, "1982-02-00", "NA", "affected"),
        (BRUNO, "1982-00-00", "NA", "not_found"),
    ]:
        code, out, _ = run(
            capsys,
            *("check", "--index", index, "--key-file", key, "--nir", nir),
            *("--birth-date", born, "--last-name", name),
        )
        assert (code, out.split()[0]) == (0, expected), (born, name)
