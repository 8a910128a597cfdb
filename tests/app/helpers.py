"""Helpers shared by the tests of /v1/check: request bodies, comparable responses, real processes.

Limits are lifted in most tests (here as settings overrides and as environment
variables) because those tests send hundreds of checks; the rate-limit tests
exercise the real limits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.middleware.uniform_headers import PADDING_HEADER, reason_phrase
from loadtests.harness import lifted_limits, lifted_limits_env
from lookup_index.generator import Probe
from tests.support.dataset import Dataset
from tests.support.servers import START_TIMEOUT, ApiServer, free_port, served

CHECK = "/v1/check"
#: Every limit lifted out of the way (one definition, loadtests/harness.py).
GENEROUS_LIMITS: dict[str, Any] = lifted_limits()
GENEROUS_ENV = lifted_limits_env()
#: Keys of every 200 body, whatever the outcome.
ANSWER_KEYS = {
    *("status", "incident", "exposed", "advice", "incidents", "lang", "checked_at", "padding"),
}
ERROR_KEYS = {"error", "message", "padding"}
#: What uvicorn logs once a server is up (at the info level).
STARTED_MARKERS = ("Application startup complete", "Uvicorn running on")


def body_of(probe: Probe, **extra: Any) -> dict[str, Any]:
    return {
        "nir": probe.nir,
        "birth_date": probe.birth_date,
        "last_name": probe.last_name,
        **extra,
    }


def submitted_values(probe: Probe) -> list[str]:
    """What a patient typed, and the spellings a log could turn it into."""
    compact_nir = "".join(c for c in probe.nir if c.isalnum())
    values = {probe.nir, compact_nir, compact_nir[:13], probe.birth_date, probe.last_name}
    values.add(probe.last_name.upper())
    return [v for v in values if len(v) >= 4]


def envelope(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], int]:
    """Status, raw header lines in order (minus Date), body length: what must never differ.

    X-Padding differs by status by design: it is shown as the length it brings the
    reason phrase to, which must not differ.
    """
    reason = len(reason_phrase(response.status_code))
    headers = [
        (k, str(reason + len(v)).encode() if k == PADDING_HEADER.encode() else v)
        for k, v in ((k.lower(), v) for k, v in response.headers.raw)
        if k != b"date"
    ]
    return response.status_code, headers, len(response.content)


def without_padding(response: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(response.content)
    data.pop("padding")
    return data


def dataset_env(dataset: Dataset, **extra: str) -> dict[str, str]:
    return {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_POW_PROFILE": "test",
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        **GENEROUS_ENV,
        **extra,
    }


def _listening_port(argv: Sequence[str], env: Mapping[str, str]) -> int | None:
    """The port a server started by ``argv`` would bind (``--port`` or SELFCHECK_PORT)."""
    args = list(argv)
    if "--port" in args[:-1]:
        port = args[args.index("--port") + 1]
    else:
        port = env.get("SELFCHECK_PORT", "")
    return int(port) if port.isdigit() and int(port) > 0 else None


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def run_refusal(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run a command expected to refuse to start; returns (exit code, stdout+stderr).

    A refusal is the process exiting. A server that starts instead (its port accepts
    connections, or uvicorn says so) fails the test at once, not after ``timeout``: the
    timeout is only the last resort for a process that neither exits nor listens.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SELFCHECK_")}
    full_env = {**clean, **env}
    port = _listening_port(argv, full_env)
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(list(argv), env=full_env, stdout=output, stderr=output)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                output.seek(0)
                so_far = output.read().decode(errors="replace")
                started = any(marker in so_far for marker in STARTED_MARKERS)
                if started or (port is not None and _accepts(port)):
                    raise AssertionError(f"{argv} started instead of refusing:\n{so_far}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{argv} neither exited nor listened in {timeout} s")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        output.seek(0)
        return process.returncode, output.read().decode(errors="replace")


@contextlib.contextmanager
def python_server(
    code: str, env: Mapping[str, str], log: Path, timeout: float = START_TIMEOUT
) -> Iterator[ApiServer]:
    """Like tests.support.servers.api_server, but runs ``python -c code`` (e.g. with a patch)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SELFCHECK_")}
    full_env = {**clean, **env, "SELFCHECK_HOST": "127.0.0.1", "SELFCHECK_PORT": str(port)}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", code], env=full_env, stdout=handle, stderr=handle
        )
    with served(process, port, log, timeout) as server:
        yield server
