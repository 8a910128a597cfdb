"""``selfcheck demo --delivery private``: the demo with private delivery, all on loopback.

It builds a demo index whose synthetic patients have synthetic e-mail addresses
(``patient-<row>@example.org``), starts a redis-server for the outbox, a local SMTP
sink (aiosmtpd writing a Maildir) and the send-worker, then serves the API in private
mode. Every message "sent" lands in ``<dir>/mail/new/``, one file each. Needs the
build tools (``.[build]``, which brings aiosmtpd) and Debian's redis-server.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from app.demo import current_rules
from lookup_index.builder import BuildOptions, build_index
from lookup_index.pepper import generate_pepper_file, load_pepper
from lookup_index.profiles import FAST
from lookup_index.sender_keys import generate_sender_keys, load_sender_public_key


class DemoError(Exception):
    """A missing tool for the private demo: one line, no traceback."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise DemoError(f"a demo service did not start on port {port}")


def _with_contacts(export: Path, out: Path) -> None:
    """The demo export plus an ``email`` column: every third patient has none."""
    with (
        export.open(newline="", encoding="utf-8") as source,
        out.open("w", newline="", encoding="utf-8") as target,
    ):
        rows = csv.reader(source)
        writer = csv.writer(target)
        writer.writerow([*next(rows), "email"])
        for number, row in enumerate(rows, start=1):
            writer.writerow([*row, "" if number % 3 == 0 else f"patient-{number}@example.org"])


def prepare_private_index(directory: Path, export: Path, key: Path) -> tuple[Path, Path, Path]:
    """The demo index with sealed contacts, the sender's key and the outbox key."""
    sender_key, outbox_key = directory / "demo-sender.key", directory / "demo-outbox.key"
    index = directory / "demo-private-index.bin"
    if not sender_key.exists():
        generate_sender_keys(directory / "demo-sender")
    if not outbox_key.exists():
        generate_pepper_file(outbox_key)
    # Rebuilt when the demo export was (new rows, new identity rules) or the rules changed.
    stale = not index.exists() or index.stat().st_mtime < export.stat().st_mtime
    if stale or not current_rules(index):
        contacts = directory / "demo-export-contacts.csv"
        _with_contacts(export, contacts)
        print("building the private-delivery demo index (contacts sealed to the sender)...")
        build_index(
            BuildOptions(
                input=contacts,
                out=index,
                pepper=load_pepper(key),
                profile=FAST,
                incident_id="demo-2026",
                incident_label="Démonstration : fuite de données d'un logiciel médical",
                sender_public_key=load_sender_public_key(directory / "demo-sender.pub"),
            )
        )
    return index, sender_key, outbox_key


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def private_delivery_services(
    directory: Path, sender_key: Path, outbox_key: Path, port: int
) -> Iterator[dict[str, str]]:
    """Redis, the SMTP sink and the send-worker; yields the API's settings."""
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise DemoError("the private demo needs redis-server (apt-get install redis-server)")
    try:
        import aiosmtpd  # noqa: F401 (only to say clearly that it is missing)
    except ImportError:
        raise DemoError(
            "the private demo needs aiosmtpd: pip install 'patient-breach-selfcheck[build]'"
        ) from None
    mail = directory / "mail"
    for sub in ("new", "cur", "tmp"):
        (mail / sub).mkdir(parents=True, exist_ok=True)
    (directory / "redis").mkdir(exist_ok=True)
    redis_port, smtp_port = _free_port(), _free_port()
    outbox_url = f"redis://127.0.0.1:{redis_port}/0"
    log = (directory / "demo-services.log").open("ab")
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(
            subprocess.Popen(
                [
                    redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(directory / "redis"),
                ],
                stdout=log, stderr=log,
            )
        )  # fmt: skip
        _wait_for_port(redis_port)
        started.append(
            subprocess.Popen(
                [
                    sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                    "-c", "aiosmtpd.handlers.Mailbox", str(mail),
                ],
                stdout=log, stderr=log,
            )
        )  # fmt: skip
        _wait_for_port(smtp_port)
        worker_env = {
            **os.environ,
            "SELFCHECK_OUTBOX_URL": outbox_url,
            "SELFCHECK_OUTBOX_KEY_FILE": str(outbox_key.resolve()),
            "SELFCHECK_SENDER_KEY_FILE": str(sender_key.resolve()),
            "SELFCHECK_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "SELFCHECK_MAIL_FROM": "selfcheck-demo@example.org",
            "SELFCHECK_PUBLIC_ORIGIN": f"http://127.0.0.1:{port}",
            "SELFCHECK_SEND_RETRY_BASE_S": "2",
        }
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "app", "send-worker"], env=worker_env, stdout=log,
                stderr=log,
            )
        )  # fmt: skip
        print(
            f"\nPrivate delivery: answers say 'submitted'; the send-worker mails the contact "
            f"on file through a local SMTP sink. Read the messages in {mail / 'new'}/ "
            f"(one file per message). Services log to {directory / 'demo-services.log'}."
        )
        yield {
            "SELFCHECK_DELIVERY": "private",
            "SELFCHECK_OUTBOX_URL": outbox_url,
            "SELFCHECK_OUTBOX_KEY_FILE": str(outbox_key.resolve()),
        }
    finally:
        for process in reversed(started):
            _stop(process)
        log.close()
