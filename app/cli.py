"""``selfcheck serve`` (or ``python -m app serve``) and ``selfcheck demo`` (``make run``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.delivery.send_worker import open_worker, serve_worker
from app.logging_setup import log_config
from app.metrics_server import MULTIPROC_ENV, prepare_multiprocess_dir, serve_metrics
from app.settings import Settings
from app.state import StartupRefused, open_service
from lookup_index import LookupIndexError

#: Bytes of request line and headers read before refusing (400). A browser sends under
#: 2 KiB; nginx in front allows 4 x 8 KiB. Plain httptools would accept any size.
MAX_HEADER_BYTES = 16 * 1024
#: In-flight checks get this long to finish on SIGTERM (compose's stop_grace_period is longer).
GRACEFUL_SHUTDOWN_S = 10


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
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
        service = open_service(
            settings, RateLimits(settings), PaddedJSON(settings.response_size), warn=False
        )
    except StartupRefused as exc:
        raise SystemExit(f"selfcheck cannot start: {exc}") from None
    if service.delivery is not None:
        service.delivery.close()
    service.indexes.close()
    service.hasher.key.close()


def serve(settings: Settings) -> None:
    """The one way to run the service; preflight first, then uvicorn with the safe options."""
    _preflight(settings)
    owned_metrics_dir = not os.environ.get(MULTIPROC_ENV)
    metrics_dir = prepare_multiprocess_dir()
    try:
        serve_metrics(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        # The API still serves; the scrape target goes down, which the alerts show.
        logging.getLogger("app.metrics").warning(
            "metrics not served on %s:%d (%s)",
            settings.metrics_host,
            settings.metrics_port,
            exc.strerror or type(exc).__name__,
        )
    try:
        _run_uvicorn(settings)
    finally:
        if owned_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_uvicorn(settings: Settings) -> None:
    """What ``uvicorn.run`` does, with our supervisor for several workers (SIGHUP reloads)."""
    import uvicorn

    from app.supervisor import STARTUP_FAILURE, ReloadingMultiprocess

    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # httptools with a head deadline and a head-size cap (app/server_protocol.py).
        http="app.server_protocol:BoundedHttpToolsProtocol",
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ws="none",
        # Client addresses are personal data: no access log.
        access_log=False,
        # The app walks X-Forwarded-For itself, against SELFCHECK_TRUSTED_PROXIES; uvicorn
        # would otherwise believe it from 127.0.0.1 (its default --forwarded-allow-ips).
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        date_header=True,
        # No --limit-concurrency: its 503 is 19 bytes of text/plain, neither padded nor
        # floored; the app's in-flight cap answers overload with the uniform 503.
        limit_concurrency=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=settings.keep_alive_s,
        log_config=log_config(settings.log_level),
    )
    if config.workers > 1:
        with contextlib.suppress(KeyboardInterrupt):
            ReloadingMultiprocess(config, sockets=[config.bind_socket()]).run()
        return
    config.load_app()
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def send_worker(settings: Settings) -> None:
    """``selfcheck send-worker``: the outbox's consumer (docs/OPERATIONS.md, "Private delivery")."""
    import asyncio
    import logging

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        worker = open_worker(settings)
    except (ValueError, LookupIndexError) as exc:
        raise SystemExit(f"selfcheck send-worker cannot start: {exc}") from None
    asyncio.run(serve_worker(worker))


def demo(directory: Path, port: int, rows: int, delivery: str = "screen") -> None:
    # Imported here: the demo builds its index with the build tools (Faker), which
    # `selfcheck serve` neither needs nor finds on an API host.
    from app.demo import prepare_demo

    key, index, probes = prepare_demo(directory, rows)
    if delivery == "private":
        demo_private(directory, port, key, probes)
        return
    os.environ.setdefault("SELFCHECK_INDEX_PATH", str(index))
    serve_demo(port, key, probes)


def serve_demo(port: int, key: Path, probes: list[Any]) -> None:
    """The demo's settings (where the operator set none), its identities, then serve."""
    from app.demo import DEMO_NETWORK_LIMITS, demo_identities, print_identities

    os.environ.setdefault("SELFCHECK_KEY_FILE", str(key.resolve()))
    os.environ.setdefault("SELFCHECK_PORT", str(port))
    os.environ.setdefault("SELFCHECK_LIMITS_PER_NETWORK", DEMO_NETWORK_LIMITS)
    os.environ.setdefault("SELFCHECK_LOG_FORMAT", "text")
    settings = _settings()
    print_identities(demo_identities(probes), settings.port)
    serve(settings)


def print_outcomes(settings: Settings, days: int) -> None:
    from app.outcome_totals import report
    from app.rate_limit import RateLimits

    for line in report(RateLimits(settings).storage, max(1, min(days, 400))):
        print(line)


def demo_private(directory: Path, port: int, key: Path, probes: list[Any]) -> None:
    from app.demo_private import DemoError, prepare_private_index, private_delivery_services

    export = directory / "demo-export.csv"
    index, sender_key, outbox_key = prepare_private_index(directory, export, key)
    try:
        with private_delivery_services(directory, sender_key, outbox_key, port) as extra:
            for name, value in extra.items():
                os.environ[name] = value
            os.environ["SELFCHECK_INDEX_PATH"] = str(index)
            serve_demo(port, key, probes)
    except DemoError as exc:
        raise SystemExit(f"selfcheck demo: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfcheck", description="Patient breach self-check")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = sub.add_parser(
        "serve", help="serve the API (settings from SELFCHECK_* variables, or these flags)"
    )
    serve_parser.add_argument("--host", help="address to bind (SELFCHECK_HOST)")
    serve_parser.add_argument("--port", type=int, help="port (SELFCHECK_PORT)")
    serve_parser.add_argument("--workers", type=int, help="worker processes (SELFCHECK_WORKERS)")
    outcomes_parser = sub.add_parser(
        "outcomes", help="daily totals of outcomes for the DPO (days that are over; < 10 hidden)"
    )
    outcomes_parser.add_argument("--days", type=int, default=7)
    sub.add_parser(
        "send-worker",
        help="deliver private answers: read the outbox, send by SMTP (SELFCHECK_* settings)",
    )
    demo_parser = sub.add_parser("demo", help="build a synthetic demo index and serve it")
    demo_parser.add_argument("--dir", type=Path, default=Path(".demo"))
    demo_parser.add_argument("--port", type=int, default=8000)
    demo_parser.add_argument(
        "--rows", type=int, default=3000, help="synthetic patients in a new demo index"
    )
    demo_parser.add_argument(
        "--delivery",
        choices=("screen", "private"),
        default="screen",
        help="private: answers say 'submitted'; messages go to a local SMTP sink",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "outcomes":
            print_outcomes(_settings(), args.days)
        elif args.command == "serve":
            flags = {"host": args.host, "port": args.port, "workers": args.workers}
            serve(_settings(**{k: v for k, v in flags.items() if v is not None}))
        elif args.command == "send-worker":
            send_worker(_settings())
        else:
            demo(args.dir, args.port, args.rows, args.delivery)
    except LookupIndexError as exc:
        print(f"selfcheck: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
