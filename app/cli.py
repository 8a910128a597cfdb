"""``selfcheck serve`` (or ``python -m app serve``) and ``selfcheck demo`` (``make run``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app.logging_setup import log_config
from app.settings import Settings
from app.state import StartupRefused, open_service
from lookup_index import LookupIndexError


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "_".join(str(part) for part in first["loc"]).upper()
        # A model-level check (several fields together) has no single field to name.
        where = f"setting SELFCHECK_{field}" if field else "settings"
        raise SystemExit(f"selfcheck: invalid {where}: {first['msg']}") from None


def _preflight(settings: Settings) -> None:
    """Open what the workers will open, so a bad index or key is one line here, not N tracebacks."""
    from app.padded_json import PaddedJSON
    from app.rate_limit import RateLimits

    try:
        service = open_service(settings, RateLimits(settings), PaddedJSON(settings.response_size))
    except StartupRefused as exc:
        raise SystemExit(f"selfcheck cannot start: {exc}") from None
    service.reader.close()


def serve(settings: Settings) -> None:
    import uvicorn

    _preflight(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=False,
        # The app walks X-Forwarded-For itself, against SELFCHECK_TRUSTED_PROXIES.
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,
        log_config=log_config(settings.log_level),
    )


def demo(directory: Path, port: int) -> None:
    # Imported here: the demo builds its index with the build tools (Faker), which
    # `selfcheck serve` neither needs nor finds on an API host.
    from app.demo import DEMO_NETWORK_LIMITS, demo_identities, prepare_demo, print_identities

    key, index, probes = prepare_demo(directory)
    os.environ.setdefault("SELFCHECK_INDEX_PATH", str(index))
    os.environ.setdefault("SELFCHECK_KEY_FILE", str(key.resolve()))
    os.environ.setdefault("SELFCHECK_PORT", str(port))
    os.environ.setdefault("SELFCHECK_LIMITS_PER_NETWORK", DEMO_NETWORK_LIMITS)
    settings = _settings()
    print_identities(demo_identities(probes), settings.port)
    serve(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfcheck", description="Patient breach self-check")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="serve the API (settings from SELFCHECK_* variables)")
    demo_parser = sub.add_parser("demo", help="build a synthetic demo index and serve it")
    demo_parser.add_argument("--dir", type=Path, default=Path(".demo"))
    demo_parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(_settings())
        else:
            demo(args.dir, args.port)
    except LookupIndexError as exc:
        print(f"selfcheck: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
