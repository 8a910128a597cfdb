"""Real processes on loopback: redis-server and the API under uvicorn. Bounded in time.

These are never skipped: `make test` installs redis-server (scripts/ensure-system-packages.sh).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = START_TIMEOUT, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not installed: run scripts/ensure-system-packages.sh")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--maxmemory-policy", "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing ever answers (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()


@dataclass
class ApiServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def api_server(
    env: Mapping[str, str], log: Path, port: int | None = None, timeout: float = START_TIMEOUT
) -> Iterator[ApiServer]:
    """`python -m app serve` with SELFCHECK_* settings from ``env``; waits for /healthz."""
    port = port or free_port()
    full_env = {**os.environ, **env, "SELFCHECK_HOST": "127.0.0.1", "SELFCHECK_PORT": str(port)}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], env=full_env, stdout=handle, stderr=handle
        )
    with served(process, port, log, timeout) as server:
        yield server


@contextlib.contextmanager
def served(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = START_TIMEOUT
) -> Iterator[ApiServer]:
    """Wait until a started API process answers /healthz; stop it on exit, whatever happens."""
    server = ApiServer(port, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"API exited with {process.returncode}: {server.log_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"API not up after {timeout} s: {server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        stop_process(process)
