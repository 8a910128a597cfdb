"""Log configuration for the server: no access log; our own request line holds no input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from app.client_address import IPNetwork, client_ip
from app.network_id import NetworkIds

if TYPE_CHECKING:
    from app.middleware.observe import Observed


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's access log is off (it prints client addresses); our own lines carry no input."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper(), "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def silence_access_log() -> None:
    """Turn uvicorn's access log off whatever started the server.

    Called by ``create_app``: even a hand-started ``uvicorn --factory`` (access log
    on by default) then prints no client address. uvicorn configures logging
    before it loads the app, so this comes last and holds.
    """
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


class RequestLog:
    """One line per request on stdout: route, status, duration, refusing bucket, network id.

    Never an input, an outcome or an address: the fields are fixed names and numbers, and
    the network is an HMAC under a key of the day (app/network_id.py). ``json`` renders
    with structlog's JSONRenderer; ``text`` (for ``make run``) as key=value pairs.
    """

    def __init__(
        self, log_format: str, network_ids: NetworkIds, trusted_proxies: Sequence[IPNetwork]
    ) -> None:
        # Imported here: structlog loads rich for its dev console when rich is installed
        # (the build extra), which importing app.main must not (tests/test_import_graph.py).
        import structlog

        renderer: Any = (
            structlog.processors.JSONRenderer()
            if log_format == "json"
            else structlog.processors.KeyValueRenderer(
                key_order=["ts", "event", "route", "status", "duration_ms"], drop_missing=True
            )
        )
        # A logger of its own, not structlog's global configuration: nothing at import,
        # nothing shared with another app in the same process.
        self._logger = structlog.wrap_logger(
            structlog.PrintLogger(sys.stdout),
            processors=[structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"), renderer],
        )
        self._network_ids = network_ids
        self._trusted_proxies = trusted_proxies

    async def __call__(self, observed: Observed) -> None:
        key = self._network_ids.cached_key()
        if key is None:
            key = await run_in_threadpool(self._network_ids.fetch_key)
        address = client_ip(observed.scope, self._trusted_proxies)
        fields: dict[str, Any] = {
            "route": observed.route,
            "status": observed.status,
            "duration_ms": observed.duration_ms,
            "net": NetworkIds.id_for(key, address) if key is not None else None,
        }
        note = observed.note
        if note.refused_by is not None and observed.status == 429:
            fields["refused_by"] = note.refused_by
        if note.unavailable is not None and observed.status == 503:
            fields["unavailable"] = note.unavailable
        self._logger.info("request", **fields)
