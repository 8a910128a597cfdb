"""``make run``'s demo (``python -m app demo``) in a real process: it builds its synthetic
index, prints identities to try, and serves them with the answers it promised."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.demo import prepare_demo
from lookup_index.reader import IndexReader
from tests.support.servers import free_port, served

pytestmark = pytest.mark.slow

#: "  affected   NIR 1 85 ...  born 1985-03-02  name DUPONT" as the demo prints it.
IDENTITY_LINE = re.compile(
    r"^  (?P<expected>affected|not_found) +NIR (?P<nir>.+?)  born (?P<birth>\S+)"
    r"  name (?P<name>.+)$",
    re.MULTILINE,
)


def test_the_demo_serves_the_identities_it_prints(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCHECK_")}
    env |= {"SELFCHECK_RESPONSE_FLOOR_MS": "0"}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "app", "demo", "--dir", str(tmp_path / "demo")),
                # Fewer rows than `make run`'s 3,000: the same path, in seconds.
                *("--port", str(port), "--rows", "400"),
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    with served(process, port, log, timeout=180) as server:
        shown = list(IDENTITY_LINE.finditer(server.log_text()))
        assert [m["expected"] for m in shown] == ["affected", "affected", "not_found"]
        for identity in shown:
            body = {
                "nir": identity["nir"],
                "birth_date": identity["birth"],
                "last_name": identity["name"],
            }
            answer = httpx.post(f"{server.url}/v1/check", json=body, timeout=10)
            assert answer.status_code == 200
            assert answer.json()["status"] == identity["expected"]
        assert httpx.get(f"{server.url}/", timeout=5).status_code == 200


def test_a_demo_index_left_by_an_older_version_is_rebuilt(tmp_path: Path) -> None:
    """A demo directory from before a change of the identity rules (or a damaged index) is
    rebuilt, not served: the API would refuse it and `make run` would stop."""
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "demo-index.bin").write_bytes(b"PBSCIDX\n left by an older version")
    (directory / "demo-probes.csv").write_text("nir,birth_date,last_name,expected\n")
    _, index, probes = prepare_demo(directory, rows=60)
    with IndexReader.open(index) as reader:
        reader.check_identity_rules()
    assert probes
