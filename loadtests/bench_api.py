"""Benchmark of the check API: server CPU per check against the Argon2 cost of one hash.

The issue's target: everything the server does around the hash (HTTP parsing,
validation, limits, lookup, padding, headers, the floor) costs at most 10 % on
top of Argon2, i.e. server CPU per check <= 1.1 x the CPU of one hash, both
measured in the same run on the same machine.

What it does, in one run (about a minute by default):

1. builds a small synthetic index with ``--profile`` (``fast`` by default; or
   takes ``--index``/``--key``/``--probes`` of an existing one);
2. measures the CPU time of one keyed Argon2 hash for that index's profile, in
   this process (``time.thread_time`` around ``--hashes`` hashes);
3. starts ``python -m app serve`` (one uvicorn process) with the floor off,
   then with the floor on, and drives sequential then concurrent checks
   (hits and misses alternately) from an httpx client; the server's CPU is read
   from the OS (``psutil``: user + system time of the whole process, every thread)
   before and after each batch;
4. prints a Markdown table: CPU per check, the ratio to Argon2, requests/s per
   core (1 / CPU per check), measured throughput and p50/p99 latency.

Usage::

    python loadtests/bench_api.py                      # fast profile, ~1 minute
    python loadtests/bench_api.py --profile standard --markdown docs/bench-api.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
import psutil

from app.routes.paths import CHECK_PATH
from loadtests.harness import (
    api_server,
    argon2_cost,
    build_synthetic_index,
    lifted_limits_env,
    process_tree_cpu_seconds,
)
from lookup_index import PROFILES, IndexReader, canonical_identity, load_pepper
from lookup_index.generator import Probe, read_probes

TARGET_RATIO = 1.1
#: Limits out of the way: this measures the work of a check, not the limiter's refusals.
START_TIMEOUT = 30.0
IDLE_SAMPLE_S = 3.0


@dataclass
class Batch:
    """One batch of checks against one server: what the client saw, what the server spent."""

    name: str
    floor_ms: int
    checks: int
    concurrency: int
    wall_s: float
    server_cpu_s: float
    latencies_s: list[float] = field(repr=False)
    statuses: dict[int, int]
    #: Argon2 CPU per hash, measured just before and just after this batch (mean).
    argon2_s: float = 0.0

    @property
    def ratio(self) -> float:
        return self.cpu_per_check_s / self.argon2_s

    @property
    def cpu_per_check_s(self) -> float:
        return self.server_cpu_s / self.checks

    @property
    def throughput(self) -> float:
        return self.checks / self.wall_s

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the index and the Argon2 cost ---------------------------------------------------------


class Argon2Meter:
    """Times the keyed hash of the index's profile in this process (CPU of this thread)."""

    def __init__(self, index: Path, key: Path, probes: list[Probe]) -> None:
        with IndexReader.open(index) as reader:
            self.hasher = reader.hasher(load_pepper(key))
            self.profile = reader.header.profile
        self.canonicals = [
            canonical_identity(p.nir, p.birth_date, p.last_name).canonical() for p in probes
        ]

    def cpu_per_hash(self, hashes: int) -> float:
        return argon2_cost(self.hasher, self.canonicals, min_hashes=hashes).cpu_per_hash_s


# --- the server ------------------------------------------------------------------------------


@contextlib.contextmanager
def api_process(
    index: Path, key: Path, floor_ms: int, log: Path, hash_concurrency: int | None
) -> Iterator[tuple[str, psutil.Process]]:
    """`python -m app serve` on a free loopback port; yields its URL and its process."""
    env = lifted_limits_env() | {
        "SELFCHECK_INDEX_PATH": str(index),
        "SELFCHECK_KEY_FILE": str(key.resolve()),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",  # --profile test is allowed for a quick run
        "SELFCHECK_RESPONSE_FLOOR_MS": str(floor_ms),
        "SELFCHECK_LOG_LEVEL": "warning",
    }
    if hash_concurrency:
        env["SELFCHECK_HASH_CONCURRENCY"] = str(hash_concurrency)
    with api_server(
        env, log, timeout=START_TIMEOUT, inherit_settings=False, ready_path="/readyz"
    ) as server:
        yield server.url, psutil.Process(server.process.pid)


async def drive(
    url: str,
    process: psutil.Process,
    bodies: list[bytes],
    *,
    name: str,
    floor_ms: int,
    checks: int,
    concurrency: int,
) -> Batch:
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(number: int) -> None:
            started = time.perf_counter()
            response = await client.post(
                CHECK_PATH, content=bodies[number % len(bodies)], headers=headers
            )
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        for number in range(min(20, checks)):  # warm-up: connections, lazy imports, caches
            await one(number)
        latencies.clear()
        statuses.clear()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in range(checks):
            queue.put_nowait(number)

        async def worker() -> None:
            while not queue.empty():
                await one(queue.get_nowait())

        cpu_before, started = process_tree_cpu_seconds(process), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu = process_tree_cpu_seconds(process) - cpu_before
    return Batch(name, floor_ms, checks, concurrency, wall, cpu, latencies, statuses)


# --- the report ------------------------------------------------------------------------------


def markdown(
    profile: str, batches: list[Batch], overruns: dict[int, int], idle: dict[int, float]
) -> str:
    ms = 1000
    worst = max(b.ratio for b in batches)
    argon2 = statistics.mean(b.argon2_s for b in batches)
    lines = [
        f"Argon2 profile `{profile}`: one keyed hash costs **{argon2 * ms:.2f} ms** of CPU "
        f"(mean of this run; measured again around every batch; {os.cpu_count()} cores visible, "
        f"load average {os.getloadavg()[0]:.1f} at the end: CPU times inflate on a busy host).",
        "",
        "| batch | floor | checks | in flight | Argon2 / hash | server CPU / check "
        "| overhead / check | ratio | req/s per core | measured req/s | p50 | p99 | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in batches:
        lines.append(
            f"| {b.name} | {b.floor_ms} ms | {b.checks} | {b.concurrency} "
            f"| {b.argon2_s * ms:.2f} ms | {b.cpu_per_check_s * ms:.2f} ms "
            f"| {(b.cpu_per_check_s - b.argon2_s) * ms:.2f} ms | {b.ratio:.3f} "
            f"| {1 / b.cpu_per_check_s:.0f} | {b.throughput:.1f} "
            f"| {b.percentile(0.5) * ms:.1f} ms | {b.percentile(0.99) * ms:.1f} ms "
            f"| {', '.join(f'{s}: {n}' for s, n in sorted(b.statuses.items()))} |"
        )
    verdict = "meets" if worst <= TARGET_RATIO else "EXCEEDS"
    lines += [
        "",
        f"Worst ratio {worst:.3f}: {verdict} the target (<= {TARGET_RATIO}). "
        '"req/s per core" is 1 / server CPU per check: what one fully busy core sustains.',
        "Floor overruns logged by the server: "
        + ", ".join(f"floor {f} ms: {n}" for f, n in overruns.items())
        + ". Idle server CPU (included in the batches above): "
        + ", ".join(f"floor {f} ms: {share * ms:.1f} ms/s" for f, share in idle.items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    parser.add_argument("--rows", type=int, default=600, help="rows of the generated index")
    parser.add_argument("--index", type=Path, help="an existing index (with --key and --probes)")
    parser.add_argument("--key", type=Path)
    parser.add_argument("--probes", type=Path)
    parser.add_argument(
        "--hashes", type=int, default=60, help="hashes timed for the Argon2 cost, each time"
    )
    parser.add_argument("--sequential", type=int, default=150, help="checks one after another")
    parser.add_argument("--concurrent", type=int, default=400, help="checks with several in flight")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--floor-ms", type=int, default=250, help="the floor of the 'on' runs")
    parser.add_argument("--hash-concurrency", type=int, help="SELFCHECK_HASH_CONCURRENCY")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        if args.index:
            if not (args.key and args.probes):
                parser.error("--index needs --key and --probes")
            index, key, probes_file = args.index, args.key, args.probes
        else:
            print(
                f"building a {args.rows}-row index with the {args.profile} profile...", flush=True
            )
            built = build_synthetic_index(
                workdir,
                rows=args.rows,
                seed=2718,
                profile=PROFILES[args.profile],
                probes=200,
                incident_id="bench",
                incident_label="Benchmark index (synthetic)",
            )
            index, key, probes_file = built.index, built.key, built.probes_file
        probes = [p for p in read_probes(probes_file) if p.expected in ("affected", "not_found")]
        hits = [p for p in probes if p.expected == "affected"]
        misses = [p for p in probes if p.expected == "not_found"]
        interleaved = [p for pair in zip(hits, misses, strict=False) for p in pair]
        bodies = [
            orjson.dumps({"nir": p.nir, "birth_date": p.birth_date, "last_name": p.last_name})
            for p in interleaved
        ]
        meter = Argon2Meter(index, key, interleaved)
        first = meter.cpu_per_hash(args.hashes)
        print(f"Argon2 ({meter.profile.name}): {first * 1000:.2f} ms CPU per hash", flush=True)

        batches: list[Batch] = []
        overruns: dict[int, int] = {}
        idle: dict[int, float] = {}
        for floor_ms in (0, args.floor_ms):
            log = workdir / f"server-floor-{floor_ms}.log"
            with api_process(index, key, floor_ms, log, args.hash_concurrency) as (url, process):
                # What the server burns doing nothing (timers) is in every batch's CPU too;
                # it weighs most when the floor keeps a sequential client mostly waiting.
                idle_before, idle_started = process_tree_cpu_seconds(process), time.perf_counter()
                time.sleep(IDLE_SAMPLE_S)
                idle[floor_ms] = (process_tree_cpu_seconds(process) - idle_before) / (
                    time.perf_counter() - idle_started
                )
                for name, checks, concurrency in (
                    ("sequential", args.sequential, 1),
                    ("concurrent", args.concurrent, args.concurrency),
                ):
                    # Measured around the batch: a shared machine drifts during a run.
                    before = meter.cpu_per_hash(args.hashes)
                    batch = asyncio.run(
                        drive(
                            url,
                            process,
                            bodies,
                            name=name,
                            floor_ms=floor_ms,
                            checks=checks,
                            concurrency=concurrency,
                        )
                    )
                    batch.argon2_s = (before + meter.cpu_per_hash(args.hashes)) / 2
                    print(
                        f"floor {floor_ms} ms, {name}: {batch.cpu_per_check_s * 1000:.2f} ms "
                        f"CPU per check (ratio {batch.ratio:.3f}), "
                        f"p50 {batch.percentile(0.5) * 1000:.1f} ms",
                        flush=True,
                    )
                    batches.append(batch)
            overruns[floor_ms] = log.read_text(errors="replace").count("response floor overrun")

    report = markdown(meter.profile.name, batches, overruns, idle)
    print()
    print(report)
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
