"""``/metrics`` on its own port, served by ``selfcheck serve``'s own process.

The workers write their values to files in ``PROMETHEUS_MULTIPROC_DIR``; this server
sums them (prometheus-client's ``MultiProcessCollector``) and answers on
``SELFCHECK_METRICS_HOST:SELFCHECK_METRICS_PORT``, loopback by default, never on the
public port: a scraper on the internal network reads it, patients never can.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: prometheus-client reads this variable when it is imported, in every worker.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Use the operator's ``PROMETHEUS_MULTIPROC_DIR`` (emptied: old values would add up)
    or a fresh private directory; set it for the workers about to start."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="selfcheck-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def serve_metrics(host: str, port: int) -> None:
    """Start the exposition server on a daemon thread (it dies with the launcher)."""
    # Imported only now: the variable above must be set before prometheus-client loads.
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def forget_this_process() -> None:
    """At a worker's exit: its live gauges (the index info) stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
