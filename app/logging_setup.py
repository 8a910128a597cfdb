"""Log configuration for the server: no access log, nothing from requests."""

from __future__ import annotations

import logging
from typing import Any


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
