"""The key-backend benchmark runs end to end on a real SoftHSM2 token (tiny sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_key_backend_reports_both_backends() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "loadtests" / "bench_key_backend.py"),
            "--calls",
            "50",
            "--hashes",
            "2",
            "--rounds",
            "1",
            "--profile",
            "test",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "| file |" in done.stdout
    assert "| pkcs11 (SoftHSM2) |" in done.stdout
    assert "pkcs11 HMAC / file HMAC" in done.stdout
