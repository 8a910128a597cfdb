"""Stretching chunks on a Dask cluster (``lookup-index build --scheduler ...``).

Workers see plaintext identities, so the connection is locked down: a remote
scheduler only over ``tls://`` with mutual authentication (Dask ``Security``),
``tcp://`` on loopback only, and every worker must keep its memory off disk
(spilling off, or its local directory on a tmpfs). Tasks carry rows, salt and
Argon2 parameters, never the pepper: the client seals every result.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from distributed import Client, Security, wait
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from lookup_index.csv_input import ExportRow
from lookup_index.exceptions import LookupIndexError
from lookup_index.executors import bounded
from lookup_index.profiles import Argon2Profile
from lookup_index.row_stretching import StretchedChunk, stretch_rows

T = TypeVar("T")
CONNECT_TIMEOUT_S = 30
DASHBOARD_PROBE_S = 3
#: Chunks in flight per worker thread: enough to keep every thread busy between round trips.
SLOTS_PER_THREAD = 2


class ClusterError(LookupIndexError):
    """The Dask cluster cannot be used safely, or cannot be reached."""


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """Where the scheduler is and how to authenticate to it."""

    scheduler: str | None = None
    scheduler_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Told the dashboard link (or None) once connected: the CLI prints it.
    announce: Callable[[str | None], None] | None = field(default=None, compare=False)


def scheduler_address(options: ClusterOptions) -> str:
    """The scheduler's address, refused unless it is ``tls://`` or loopback ``tcp://``."""
    address = options.scheduler
    if options.scheduler_file is not None:
        try:
            address = str(json.loads(options.scheduler_file.read_text())["address"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ClusterError(
                f"cannot read a scheduler address from {options.scheduler_file}"
            ) from None
    if not address:
        raise ClusterError("name the scheduler with --scheduler or --scheduler-file")
    parts = urlsplit(address)
    if parts.scheme == "tls":
        return address
    if parts.scheme == "tcp" and _is_loopback(parts.hostname or ""):
        return address
    raise ClusterError(
        f"refusing scheduler {parts.scheme or '?'}://{parts.hostname or '?'}: workers see "
        "identities, so a remote scheduler needs tls:// (tcp:// is for loopback only)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def security_for(options: ClusterOptions, address: str) -> Security:
    """Mutual TLS from the flags, or from Dask's own ``distributed.comm.tls`` config."""
    security = Security(
        tls_ca_file=_path(options.tls_ca_file),
        tls_client_cert=_path(options.tls_cert),
        tls_client_key=_path(options.tls_key),
        require_encryption=address.startswith("tls://") or None,
    )
    # Security sets these from the arguments or Dask's config, dynamically (hence getattr).
    resolved = [
        getattr(security, f"tls_{n}", None) for n in ("ca_file", "client_cert", "client_key")
    ]
    if address.startswith("tls://") and not all(resolved):
        raise ClusterError(
            "tls:// needs --tls-ca-file, --tls-cert and --tls-key "
            "(or Dask's distributed.comm.tls settings)"
        )
    return security


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def _memory_leak_to_disk(dask_worker: Any) -> str | None:
    """Runs on each worker: why its task data could reach a disk, or None."""
    manager = dask_worker.memory_manager
    spills = bool(manager.memory_limit) and (
        manager.memory_target_fraction is not False or manager.memory_spill_fraction is not False
    )
    if not spills:
        return None
    directory = str(dask_worker.local_directory)
    best, fstype = "", ""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            mount = fields[1]
            if directory.startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, fstype = mount, fields[2]
    return None if fstype in {"tmpfs", "ramfs"} else f"spills to {fstype or 'disk'}"


class DaskExecutor:
    """Submits chunks to the cluster; Dask reschedules the tasks of a lost worker."""

    def __init__(
        self,
        options: ClusterOptions,
        salt: bytes,
        profile: Argon2Profile,
        default_mask: int,
        with_contacts: bool = False,
    ) -> None:
        self.salt = salt
        self.profile = profile
        self.default_mask = default_mask
        self.with_contacts = with_contacts
        address = scheduler_address(options)
        security = security_for(options, address)
        try:
            # The default client of this process: distributed.wait() looks it up. The connect
            # timeout is Dask's (distributed.comm.timeouts.connect, 30 s by default).
            self.client = Client(address, security=security)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} ({type(exc).__name__})"
            ) from None
        try:
            self._check_workers()
        except BaseException:
            self.client.close()
            raise
        if options.announce is not None:
            options.announce(self._dashboard_link())
        self._token = secrets.token_hex(4)
        self._submitted = 0

    def _dashboard_link(self) -> str | None:
        """The dashboard's URL if it answers: --no-dashboard still serves /health there."""
        services = self.client.scheduler_info().get("services", {})
        link = str(self.client.dashboard_link) if "dashboard" in services else ""
        if not link.startswith(("http://", "https://")):
            return None
        try:
            with urllib.request.urlopen(link, timeout=DASHBOARD_PROBE_S) as answer:  # noqa: S310 (scheme checked)
                return link if answer.status == 200 else None
        except (OSError, ValueError):
            return None

    def _check_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError("the Dask scheduler has no worker") from None
        leaks = {w: why for w, why in self.client.run(_memory_leak_to_disk).items() if why}
        if leaks:
            worker, why = sorted(leaks.items())[0]
            raise ClusterError(
                f"worker {worker} {why}: start workers with --memory-limit 0 or a "
                "--local-directory on a tmpfs, so no identity reaches a disk"
            )

    @property
    def slots(self) -> int:
        threads: int = sum(self.client.nthreads().values())
        return max(SLOTS_PER_THREAD * threads, 2)

    def _submit(self, tag: object, rows: Sequence[ExportRow]) -> Any:
        self._submitted += 1
        return self.client.submit(
            stretch_rows,
            list(rows),
            self.salt,
            self.profile,
            self.default_mask,
            self.with_contacts,
            key=f"stretch-rows-{self._token}-{self._submitted}",
        )

    def stretch(
        self, tasks: Iterator[tuple[T, Sequence[ExportRow]]]
    ) -> Iterator[tuple[T, StretchedChunk]]:
        try:
            yield from bounded(tasks, self._submit, _first_completed, self.slots)
        except KilledWorker:
            raise ClusterError("a chunk kept killing its workers; see the worker logs") from None
        except FutureCancelledError:
            raise ClusterError("the scheduler cancelled the build's tasks") from None

    def close(self) -> None:
        self.client.close()


def _first_completed(futures: set[Any]) -> set[Any]:
    return set(wait(list(futures), return_when="FIRST_COMPLETED").done)
