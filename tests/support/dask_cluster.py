"""A real Dask cluster on loopback for the build tests: `dask scheduler` + `dask worker`s, TLS.

Throwaway certificates (one CA, one certificate for every party, as a small
build network would have), workers without a nanny (so a SIGKILL is a real
loss), with spilling off (``--memory-limit 0``), no dashboards, and a preload
that saves every task the worker executes (``dask_task_spy.py``) so tests can
look inside the task arguments. Bounded in time; never skipped (dask comes
with the project's ``build`` extra).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.servers import stop_process

START_TIMEOUT = 60.0
#: As docs/OPERATIONS.md advises: no statistical profiler (it samples every thread's stack
#: 100 times a second), the event loop's watchdog tick every second rather than 20 ms, the
#: system monitor every 5 s: an idle worker then burns ~5 ms of CPU a second, not ~45.
WORKER_ENV = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s",
}
SPY = Path(__file__).with_name("dask_task_spy.py")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a CA and a certificate for 127.0.0.1, client and server."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("lookup-index test CA"))
        .issuer_name(_name("lookup-index test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def _dask() -> str:
    return str(Path(sys.executable).with_name("dask"))


def _wait_for(predicate: object, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout} s")


@dataclass
class DaskCluster:
    directory: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    scheduler: subprocess.Popen[bytes] | None = None
    #: Preload dask_task_spy.py (tests); benchmarks leave it out.
    spy: bool = True
    worker_env: dict[str, str] = field(default_factory=lambda: dict(WORKER_ENV))

    def __post_init__(self) -> None:
        self.ca, self.cert, self.key = write_certificates(self.directory)
        self.scheduler_file = self.directory / "scheduler.json"
        self.spy_dir = self.directory / "tasks"
        self.spy_dir.mkdir()

    @property
    def tls(self) -> list[str]:
        return [
            "--tls-ca-file",
            str(self.ca),
            "--tls-cert",
            str(self.cert),
            "--tls-key",
            str(self.key),
        ]

    @property
    def address(self) -> str:
        return str(json.loads(self.scheduler_file.read_text())["address"])

    def _log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def start(self, workers: int = 2) -> None:
        log = self._log("scheduler").open("wb")
        self.scheduler = subprocess.Popen(
            [
                _dask(), "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
                # --no-dashboard still serves /health and /metrics: on loopback too.
                "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                "--scheduler-file", str(self.scheduler_file), *self.tls,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.directory,
        )  # fmt: skip
        log.close()  # the child holds its own copy
        _wait_for(self.scheduler_file.exists, "dask scheduler")
        for number in range(1, workers + 1):
            self.start_worker(f"w{number}")

    def start_worker(self, name: str) -> None:
        log = self._log(name)
        log.write_bytes(b"")
        stderr = log.open("ab")
        local = self.directory / f"{name}-local"
        self.workers[name] = subprocess.Popen(
            [
                _dask(), "worker", "--scheduler-file", str(self.scheduler_file), *self.tls,
                "--name", name, "--nthreads", "1", "--no-nanny", "--memory-limit", "0",
                "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                "--local-directory", str(local),
                *(["--preload", str(SPY)] if self.spy else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **self.worker_env, "TASK_SPY_DIR": str(self.spy_dir)},
            cwd=self.directory,
        )  # fmt: skip
        stderr.close()
        _wait_for(lambda: b"Registered to" in log.read_bytes(), f"dask worker {name}")

    def kill_worker(self, name: str) -> None:
        process = self.workers[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def ensure_workers(self) -> None:
        for name, process in list(self.workers.items()):
            if process.poll() is not None:
                self.start_worker(name)

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.workers.values() if p.poll() is None]

    def stop(self) -> None:
        for process in self.workers.values():
            stop_process(process)
        if self.scheduler is not None:
            stop_process(self.scheduler)
