"""What every benchmark (and the test suite's real-process tests) needs, written once:
limits lifted out of the way, the API and Redis as processes on loopback, a synthetic
dataset with its index, and the CPU cost of one Argon2 hash.

Nothing here imports the ``tests`` package; ``tests/support`` imports this.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from app.limit_syntax import parse_limits
from app.settings import Settings
from lookup_index.builder import BuildOptions, build_index
from lookup_index.generator import Probe, generate, read_probes
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.pepper import generate_pepper_file, load_pepper
from lookup_index.profiles import Argon2Profile

START_TIMEOUT = 60.0  # several workers starting on a loaded 2-core machine took over 20 s
#: High enough never to interfere with what a test or a benchmark measures.
LIFTED_LIMIT = "1000000/minute"


# --- limits -----------------------------------------------------------------------------------


def _is_limit_setting(default: object) -> bool:
    if not isinstance(default, str):
        return False
    try:
        parse_limits(default)
    except ValueError:
        return False
    return True


def lifted_limits() -> dict[str, str]:
    """Every limit setting of :class:`Settings` (those whose default is a limit), lifted.

    Read from the settings themselves, so a limit added later is lifted here too.
    """
    return {
        name: LIFTED_LIMIT
        for name, field in Settings.model_fields.items()
        if _is_limit_setting(field.default)
    }


def lifted_limits_env() -> dict[str, str]:
    """:func:`lifted_limits` as the ``SELFCHECK_*`` variables a server process reads."""
    return {f"SELFCHECK_{name.upper()}": value for name, value in lifted_limits().items()}


# --- processes --------------------------------------------------------------------------------


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
    """SIGTERM (uvicorn stops its workers itself), SIGKILL after ``timeout``."""
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
    #: A redis.conf read first (e.g. holding ``requirepass``, kept off the command line).
    config: Path | None = None

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
                *([str(self.config)] if self.config else []),
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
def redis_server(directory: Path, config: Path | None = None) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), directory, config=config)
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
    env: Mapping[str, str],
    log: Path,
    port: int | None = None,
    timeout: float = START_TIMEOUT,
    *,
    inherit_settings: bool = True,
    ready_path: str = "/healthz",
) -> Iterator[ApiServer]:
    """`python -m app serve` with SELFCHECK_* settings from ``env``; waits for ``ready_path``.

    ``inherit_settings=False`` drops the caller's own SELFCHECK_* variables first, so a
    benchmark measures exactly the settings it states.
    """
    port = port or free_port()
    base = {
        k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("SELFCHECK_")
    }
    full_env = {**base, **env, "SELFCHECK_HOST": "127.0.0.1", "SELFCHECK_PORT": str(port)}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], env=full_env, stdout=handle, stderr=handle
        )
    with served(process, port, log, timeout, ready_path=ready_path) as server:
        yield server


@contextlib.contextmanager
def served(
    process: subprocess.Popen[bytes],
    port: int,
    log: Path,
    timeout: float = START_TIMEOUT,
    *,
    ready_path: str = "/healthz",
) -> Iterator[ApiServer]:
    """Wait until a started API process answers ``ready_path``; stop it on exit, whatever
    happens."""
    server = ApiServer(port, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"API exited with {process.returncode}: {server.log_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}{ready_path}", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"API not up after {timeout} s: {server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        stop_process(process)


# --- the synthetic dataset -----------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticIndex:
    """A generated export, its probes (queries with their expected answers), key and index."""

    directory: Path
    export: Path
    probes_file: Path
    key: Path
    index: Path

    def probes(self) -> list[Probe]:
        return read_probes(self.probes_file)


def build_synthetic_index(
    directory: Path,
    *,
    rows: int,
    seed: int,
    profile: Argon2Profile,
    probes: int = 300,
    workers: int = 0,
    incident_id: str = "synthetic",
    incident_label: str = "Synthetic index (generated identities)",
) -> SyntheticIndex:
    """Generate ``rows`` synthetic patients and build their index (``workers=0``: all cores)."""
    directory.mkdir(parents=True, exist_ok=True)
    made = SyntheticIndex(
        directory,
        export=directory / "export.csv",
        probes_file=directory / "probes.csv",
        key=directory / "index.key",
        index=directory / "index.bin",
    )
    generate(rows, seed, made.export, made.probes_file, probes=min(rows, probes))
    generate_pepper_file(made.key)
    build_index(
        BuildOptions(
            input=made.export,
            out=made.index,
            pepper=load_pepper(made.key),
            profile=profile,
            workers=workers,
            incident_id=incident_id,
            incident_label=incident_label,
        )
    )
    return made


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Wall and CPU (this thread) seconds of one measured piece of work."""

    wall_s: float
    cpu_s: float


class Stopwatch:
    """Wall time and this thread's CPU time: on a shared machine wall time also measures
    the neighbours, CPU time mostly does not."""

    span: Span

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.span = Span(time.perf_counter() - self._wall, time.thread_time() - self._cpu)


@dataclass(frozen=True)
class Argon2Cost:
    """Keyed hashes done in this thread and what they cost."""

    hashes: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_per_hash_s(self) -> float:
        return self.cpu_s / self.hashes

    @property
    def per_s_cpu(self) -> float:
        return self.hashes / self.cpu_s

    @property
    def per_s_wall(self) -> float:
        return self.hashes / self.wall_s


#: The shape of a real canonical identity (v1|NIR body|ISO date|NAME), for cost alone.
SAMPLE_CANONICAL = b"v1|1850375115423|1985-03-12|DUPONTDURAND"


def argon2_cost(
    hasher: KeyedHasher,
    inputs: Sequence[bytes] = (SAMPLE_CANONICAL,),
    *,
    min_hashes: int = 1,
    min_seconds: float = 0.0,
    warm_up: int = 3,
) -> Argon2Cost:
    """Time ``hasher.digest`` over ``inputs`` in a loop: at least ``min_hashes`` and at least
    ``min_seconds`` of wall time, after ``warm_up`` untimed hashes (allocator, caches)."""
    for number in range(warm_up):
        hasher.digest(inputs[number % len(inputs)])
    done = 0
    with Stopwatch() as watch:
        started = time.perf_counter()
        while done < min_hashes or time.perf_counter() - started < min_seconds:
            hasher.digest(inputs[done % len(inputs)])
            done += 1
    return Argon2Cost(done, watch.span.cpu_s, watch.span.wall_s)


def best_argon2_cost(
    hasher: KeyedHasher, *, min_seconds: float, rounds: int = 3, min_hashes: int = 1
) -> Argon2Cost:
    """The cheapest of ``rounds`` runs by CPU per hash: the least disturbed by neighbours."""
    runs = [
        argon2_cost(hasher, min_hashes=min_hashes, min_seconds=min_seconds) for _ in range(rounds)
    ]
    return min(runs, key=lambda run: run.cpu_per_hash_s)


def process_tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system time of a process (every thread) and of every process it started."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):  # a worker may exit between the two calls
            times = each.cpu_times()
            total += times.user + times.system
    return total


def memory_kib() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process in KiB (Linux); empty elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    wanted = ("VmRSS", "RssAnon", "RssFile")
    return {
        key: int(rest.split()[0])
        for key, _, rest in (line.partition(":") for line in lines)
        if key in wanted
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
