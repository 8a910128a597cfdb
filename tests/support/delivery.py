"""Private delivery on real components: a contact dataset, Redis with ACL users (and AOF),
an aiosmtpd process recording what it receives, and the send-worker as a process.

Contacts are generated (``patient-N@example.org``, numbers in the 06 range built from a
counter): no real person's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.harness import free_port, stop_process, wait_for_port
from lookup_index.builder import BuildOptions, build_index
from lookup_index.generator import Probe
from lookup_index.pepper import generate_pepper_file
from lookup_index.profiles import TEST, Argon2Profile
from lookup_index.sender_keys import generate_sender_keys, load_sender_public_key
from tests.lookup_index.helpers import keyed, write_export

ROOT = Path(__file__).resolve().parents[2]
STREAM = "selfcheck:outbox"
HEADER = ("nir", "birth_date", "last_name", "usage_name", "categories", "email", "mobile")
_NAMES = ("MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS")


@dataclass(frozen=True)
class ContactDataset:
    directory: Path
    key: Path
    index: Path
    outbox_key: Path
    sender_key: Path
    #: Affected identities with an e-mail address, and that address.
    with_email: list[tuple[Probe, str]]
    #: Affected identities without any contact.
    without_contact: list[Probe]
    not_found: list[Probe]


def _identity(n: int) -> tuple[str, str, str]:
    month = 1 + n % 12
    body = f"{1 + n % 2}{60 + n % 30:02d}{month:02d}75{100 + n % 800:03d}{1 + n % 999:03d}"
    return keyed(body), f"19{60 + n % 30:02d}-{month:02d}-15", _NAMES[n % len(_NAMES)]


def make_contact_dataset(
    directory: Path, people: int = 60, profile: Argon2Profile = TEST
) -> ContactDataset:
    """``people`` affected identities (one in three without contact) and as many unknown."""
    directory.mkdir(parents=True, exist_ok=True)
    key, outbox_key = directory / "pepper.key", directory / "outbox.key"
    generate_pepper_file(key)
    generate_pepper_file(outbox_key)
    sender_key, sender_pub = generate_sender_keys(directory / "sender")
    rows, with_email, without = [], [], []
    for n in range(people):
        nir, birth_date, name = _identity(n)
        probe = Probe(nir, birth_date, name, "affected", "", "")
        if n % 3 == 2:
            rows.append((nir, birth_date, name, "", "", "", ""))
            without.append(probe)
        else:
            email = f"patient-{n}@example.org"
            rows.append((nir, birth_date, name, "", "", email, f"06{n:08d}"))
            with_email.append((probe, email))
    not_found = []
    for n in range(people, 2 * people):
        nir, birth_date, name = _identity(n)
        not_found.append(Probe(nir, birth_date, name, "not_found", "", ""))
    export = write_export(directory / "export.csv", rows, header=HEADER)
    index = directory / "index.bin"
    build_index(
        BuildOptions(
            input=export,
            out=index,
            pepper=key.read_bytes(),
            profile=profile,
            workers=1,
            incident_id="test-incident",
            incident_label="Test incident",
            sender_public_key=load_sender_public_key(sender_pub),
        )
    )
    return ContactDataset(
        directory, key, index, outbox_key, sender_key, with_email, without, not_found
    )


# --- Redis with ACL users -------------------------------------------------------------------

ADMIN_PASSWORD = "admin-test-password"  # noqa: S105 (a throwaway test server's)
API_PASSWORD = "api-test-password"  # noqa: S105
SENDER_PASSWORD = "sender-test-password"  # noqa: S105


def acl_lines(stream: str = STREAM) -> list[str]:
    """The two roles of docs/OPERATIONS.md: the API may only append; the sender may only
    read, acknowledge, delete and trim the outbox, dead-letter, and keep its own state."""
    return [
        f"user default on >{ADMIN_PASSWORD} ~* &* +@all",
        f"user selfcheck-api on >{API_PASSWORD} resetkeys ~{stream} resetchannels -@all +xadd",
        f"user selfcheck-sender on >{SENDER_PASSWORD} resetkeys ~{stream} resetchannels -@all "
        "+xreadgroup +xack +xdel +xtrim +xgroup|create +xautoclaim "
        f"(~{stream}:dead +xadd +xtrim) (~{stream}:sender:* +set +get +del +exists)",
    ]


@dataclass
class AclRedis:
    """redis-server with ACL users, optionally append-only (fsync always)."""

    directory: Path
    aof: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "default") -> str:
        return f"redis://{user}@127.0.0.1:{self.port}/0"

    def password_file(self, user: str) -> Path:
        passwords = {
            "default": ADMIN_PASSWORD,
            "selfcheck-api": API_PASSWORD,
            "selfcheck-sender": SENDER_PASSWORD,
        }
        path = self.directory / f"{user}.password"
        path.write_text(passwords[user])
        return path

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            'save ""',
            "maxmemory-policy noeviction",
            f"appendonly {'yes' if self.aof else 'no'}",
            "appendfsync always",
            *acl_lines(),
        ]
        config.write_text("\n".join(lines) + "\n")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not installed: run scripts/ensure-system-packages.sh")
        self.process = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, so only what AOF already holds survives."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def admin(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.url(), password=ADMIN_PASSWORD)


@contextlib.contextmanager
def acl_redis(directory: Path, *, aof: bool = False) -> Iterator[AclRedis]:
    server = AclRedis(directory, aof=aof)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """``python -m aiosmtpd`` with :class:`tests.support.smtp_recorder.Recorder`."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[dict[str, object]]:
        found = sorted(self.directory.glob("*.json"))
        return [json.loads(p.read_text()) for p in found]

    def refuse(self, refusing: bool) -> None:
        flag = self.directory / "refuse"
        if refusing:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def clear(self) -> None:
        for path in self.directory.glob("*.json"):
            path.unlink()


@contextlib.contextmanager
def smtp_sink(directory: Path) -> Iterator[SmtpSink]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (directory / "aiosmtpd.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                "-c", "tests.support.smtp_recorder.Recorder", str(directory),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
    try:
        wait_for_port(port)
        yield SmtpSink(directory, port, process)
    finally:
        stop_process(process)


# --- the send-worker as a process ------------------------------------------------------------


def worker_env(
    dataset: ContactDataset, redis_server: AclRedis, smtp: SmtpSink, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCHECK_")}
    env.update(
        {
            "SELFCHECK_OUTBOX_URL": redis_server.url("selfcheck-sender"),
            "SELFCHECK_OUTBOX_PASSWORD_FILE": str(redis_server.password_file("selfcheck-sender")),
            "SELFCHECK_OUTBOX_KEY_FILE": str(dataset.outbox_key),
            "SELFCHECK_SENDER_KEY_FILE": str(dataset.sender_key),
            "SELFCHECK_SMTP_URL": smtp.url,
            "SELFCHECK_MAIL_FROM": "selfcheck@example.org",
            "SELFCHECK_PUBLIC_ORIGIN": "https://check.example.org",
            "SELFCHECK_SEND_RETRY_BASE_S": "0.5",
            "SELFCHECK_SEND_RATE_PER_S": "200",
            **extra,
        }
    )
    return env


@contextlib.contextmanager
def send_worker(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "send-worker"],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_process(process)


def wait_until(predicate: object, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
