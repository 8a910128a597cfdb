"""Prometheus metrics (``selfcheck_*``): counts and durations, never who asked or what they got.

Every label value is a fixed name (a route template, a status class, a bucket of the
admission table, a failing component, an index's incident id): none comes from a request,
so the exposition holds no address, identity or outcome. There is deliberately **no
per-outcome counter**: next to per-request logs, a live "affected" count would tie an
outcome to a network in quiet hours. Outcomes are only published as daily totals for
the DPO (``app/outcome_totals.py``).

Under ``selfcheck serve`` each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and the launcher
serves their sum on ``SELFCHECK_METRICS_PORT`` (``app/metrics_server.py``). The objects
here belong to one app (their own registry), so nothing is registered at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.limit_syntax import parse_limits

#: Argon2id costs a few ms (fast) to ~30 ms (standard); the queue may wait up to seconds.
HASH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def per_second(limits: str) -> float:
    """The first (shortest) window of a limit string, as a rate per second."""
    item = parse_limits(limits)[0]
    return float(item.amount) / float(item.get_expiry())


class Metrics:
    """One app's metrics; in multiprocess mode their values live in the shared directory."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "selfcheck_requests",
            "Answered requests by route template and status class",
            ["route", "status_class"],
            registry=r,
        )
        self.refusals = Counter(
            "selfcheck_refusals",
            "429 answers by the admission bucket that refused and its class",
            ["bucket", "admission"],
            registry=r,
        )
        self.unavailable = Counter(
            "selfcheck_unavailable",
            "503 answers by what failed: store, key (HSM) or overload",
            ["cause"],
            registry=r,
        )
        self.store_errors = Counter(
            "selfcheck_store_errors",
            "Requests refused because the rate-limit store failed or timed out",
            registry=r,
        )
        self.floor_held = Counter(
            "selfcheck_floor_held", "Responses held to the response floor", registry=r
        )
        self.floor_overruns = Counter(
            "selfcheck_floor_overruns",
            "Responses ready only after their floor deadline (raise the floor or add capacity)",
            registry=r,
        )
        self.checks_hashed = Counter(
            "selfcheck_checks_hashed",
            "Checks admitted to the hash, by admission class (each spent the class ceiling once)",
            ["admission"],
            registry=r,
        )
        self.ceiling_capacity = Gauge(
            "selfcheck_ceiling_capacity_per_second",
            "The global ceiling of each admission class, per second (deployment-wide)",
            ["admission"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.hash_queue_wait = Histogram(
            "selfcheck_hash_queue_wait_seconds",
            "Wait for an Argon2 hash slot",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.hash_duration = Histogram(
            "selfcheck_hash_duration_seconds",
            "Duration of one keyed hash (Argon2id + HMAC)",
            buckets=HASH_BUCKETS,
            registry=r,
        )
        self.index_info = Gauge(
            "selfcheck_index_info",
            "The loaded index set (1), per incident; 0 for a set replaced by a reload",
            ["index_id", "incident", "format_version", "keys", "params_id"],
            registry=r,
            # Per worker (a pid label): during a reload each worker shows the set it serves.
            multiprocess_mode="liveall",
        )
        self.index_built = Gauge(
            "selfcheck_index_build_timestamp_seconds",
            "When each loaded incident's index was built (Unix time)",
            ["incident"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.index_keys = Gauge(
            "selfcheck_index_keys",
            "Keys in each loaded incident's index",
            ["incident"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.index_reloads = Counter(
            "selfcheck_index_reloads",
            "Index reloads by result: loaded, refused (the old index stays)",
            ["result"],
            registry=r,
        )
        self._index_rows: list[dict[str, str]] = []

    def set_ceilings(self, unproven: str, proven: str) -> None:
        self.ceiling_capacity.labels("unproven").set(per_second(unproven))
        self.ceiling_capacity.labels("proven").set(per_second(proven))

    # --- hooks called by the code that knows --------------------------------------------
    def hashed(self, admission: str, wait_s: float, hash_s: float) -> None:
        self.checks_hashed.labels(admission).inc()
        self.hash_queue_wait.observe(wait_s)
        self.hash_duration.observe(hash_s)

    def show_indexes(self, index_id: str, rows: Iterable[dict[str, Any]]) -> None:
        """The info metric of a freshly loaded set; the previous set's rows drop to 0."""
        for old in self._index_rows:
            self.index_info.labels(**old).set(0)
            self.index_built.labels(old["incident"]).set(0)
            self.index_keys.labels(old["incident"]).set(0)
        self._index_rows = []
        for row in rows:
            labels = {
                "index_id": index_id,
                "incident": str(row["incident"]),
                "format_version": str(row["format_version"]),
                "keys": str(row["keys"]),
                "params_id": str(row["params_id"]),
            }
            self.index_info.labels(**labels).set(1)
            self.index_built.labels(labels["incident"]).set(float(row["built_at"]))
            self.index_keys.labels(labels["incident"]).set(float(row["keys"]))
            self._index_rows.append(labels)

    def exposition(self) -> bytes:
        """This process's values in the text format (in-process tests; not multiprocess)."""
        return bytes(generate_latest(self.registry))
