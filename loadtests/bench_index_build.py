"""Part 2 of the index benchmark (``bench_index.py``): the build against the Argon2
ceiling, where its CPU goes, and its projection to the full record count."""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from loadtests.bench_index_lookups import DIGEST, header_for
from loadtests.bench_report import duration, log, table
from loadtests.harness import Stopwatch, argon2_cost
from lookup_index.builder import (
    BuildOptions,
    _merge_duplicates,
    build_index,
)
from lookup_index.categories import mask_of
from lookup_index.csv_input import ExportReader
from lookup_index.executors import ProcessPoolChunkExecutor
from lookup_index.generator import generate
from lookup_index.index_format import write_index
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.profiles import PROFILES, Argon2Profile
from lookup_index.row_stretching import canonical_keys

#: The core counts the build time is projected for.
PROJECTED_CORES = (2, 16, 64)


def argon2_rate(profile: Argon2Profile, min_seconds: float, min_hashes: int) -> dict[str, float]:
    """Keyed hashes per second on one core, by this thread's CPU time and by wall time."""
    hasher = KeyedHasher(secrets.token_bytes(32), secrets.token_bytes(16), profile)
    cost = argon2_cost(hasher, min_hashes=min_hashes, min_seconds=min_seconds, warm_up=0)
    return {
        "hashes": cost.hashes,
        "per_s_cpu": cost.per_s_cpu,
        "per_s_wall": cost.per_s_wall,
        "ms_per_hash_cpu": 1000 * cost.cpu_per_hash_s,
    }


def parse_cpu_seconds(export: Path, workdir: Path) -> tuple[float, int]:
    """CPU seconds of the builder's own parsing path (CSV, validation, canonical bytes), no hashing.

    Part of the main process's serial work; the rest is chunking, IPC and collecting.
    """
    with Stopwatch() as watch:
        rows = list(ExportReader(export).rows())
        keys = len(canonical_keys(rows, mask_of(["identity"])).canonicals)
    return watch.span.cpu_s, keys


class WorkerCpu:
    """CPU seconds used by the build's pool workers, polled with psutil while they run.

    The workers are forked by multiprocessing's forkserver, so they are this
    process's grandchildren; the forkserver and the resource tracker (children)
    are left out. A worker's last ``interval`` of CPU before it exits can be
    missed, which is small against a build of several seconds.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.poller_cpu_s = 0.0
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        started = time.thread_time()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    if child.ppid() != me.pid:
                        times = child.cpu_times()
                        self._seen[child.pid] = times.user + times.system
                except psutil.Error:
                    continue  # exited between the listing and the read
            self._stop.wait(self.interval)
        self.poller_cpu_s = time.thread_time() - started

    def __enter__(self) -> WorkerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = sum(self._seen.values())


def pool_start(workers: int, profile: Argon2Profile) -> tuple[float, float]:
    """Wall time and workers' CPU to start the builder's pool and get one answer from each.

    A fixed cost per build: the projection adds it once rather than scaling it with rows.
    """
    with Stopwatch() as watch, WorkerCpu() as cpu:
        pool = ProcessPoolChunkExecutor(bytes(16), profile, 1, workers)
        try:
            for _ in pool.stretch(iter([(i, []) for i in range(workers)])):
                pass
        finally:
            pool.close()
    return watch.span.wall_s, cpu.seconds


def post_hash_seconds(count: int, workdir: Path, seed: int) -> dict[str, float]:
    """The builder's work after the last digest, at full size: sort+merge, distinct count, write."""
    rng = np.random.default_rng(seed + 1)
    digests = np.frombuffer(rng.bytes(DIGEST * count), dtype=f"S{DIGEST}")
    values = rng.integers(1, 256, count, dtype=np.uint8)
    log(f"build: sort, merge and write {count:,} digests (the builder's post-hash steps)")
    with Stopwatch() as merge:
        unique_digests, unique_values, _ = _merge_duplicates(digests, values)
    with Stopwatch() as distinct:
        np.unique(digests)  # BuildSummary.distinct_records sorts the primary keys again
    out = workdir / "post-hash.index"
    with Stopwatch() as write:
        write_index(out, header_for(len(unique_digests)), unique_digests, unique_values)
    out.unlink()
    return {
        "sort_merge_s": merge.span.wall_s,
        "distinct_count_s": distinct.span.wall_s,
        "write_s": write.span.wall_s,
        "total_s": merge.span.wall_s + distinct.span.wall_s + write.span.wall_s,
    }


def bench_build(
    profile: Argon2Profile,
    rows: int,
    workers: int,
    rate: dict[str, float],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    directory = workdir / f"build-{profile.name}"
    directory.mkdir()
    export = directory / "export.csv"
    generate(rows, args.seed, export)
    log(f"build: {profile.name}, {rows:,} rows, {workers} workers")
    parse_cpu_s, parse_keys = parse_cpu_seconds(export, directory)
    pool_s, pool_cpu_s = pool_start(workers, profile)
    options = BuildOptions(
        input=export,
        out=directory / "index.bin",
        pepper=secrets.token_bytes(32),
        profile=profile,
        workers=workers,
    )
    main_cpu_before = time.process_time()
    with WorkerCpu() as worker_cpu:
        summary = build_index(options)
    # process_time covers every thread of this process: the builder's and the pool's
    # IPC threads, and the poller, whose own CPU is taken back out.
    main_cpu_s = time.process_time() - main_cpu_before - worker_cpu.poller_cpu_s
    keys = summary.keys_hashed
    if keys != parse_keys:
        raise AssertionError("the parse-only pass must see the same keys as the build")
    argon2_cpu_s = keys * rate["ms_per_hash_cpu"] / 1000
    ceiling = workers * rate["per_s_cpu"]
    ideal_s = keys / ceiling
    total_cpu_s = main_cpu_s + worker_cpu.seconds
    return {
        "profile": profile.name,
        "rows": summary.rows_read,
        "keys": keys,
        "keys_per_row": keys / summary.rows_read,
        "workers": workers,
        # Wall time: what an operator waits for (on this machine, with its neighbours).
        "wall_s": summary.seconds,
        "keys_per_s": keys / summary.seconds,
        "ceiling_keys_per_s": ceiling,
        "efficiency": keys / summary.seconds / ceiling,
        "ideal_argon2_wall_s": ideal_s,
        "wall_outside_argon2_share": (summary.seconds - ideal_s) / summary.seconds,
        # The builder's own split: start to last digest (parsing, validation, pool start
        # and IPC included) / sort, merge and write.
        "builder_hashing_phase_s": summary.hashing_seconds,
        "builder_after_hashing_s": summary.seconds - summary.hashing_seconds,
        # CPU: what the work costs, whatever else the machine was doing.
        "argon2_cpu_s": argon2_cpu_s,
        "worker_cpu_s": worker_cpu.seconds,
        "main_cpu_s": main_cpu_s,
        "main_parse_cpu_s": parse_cpu_s,
        "cpu_outside_argon2_share": (total_cpu_s - argon2_cpu_s) / total_cpu_s,
        "pool_start_s": pool_s,
        "pool_start_worker_cpu_s": pool_cpu_s,
    }


def project(
    build: dict[str, Any], post_hash: dict[str, float], records: int, cores: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Time to build ``records`` on ``cores`` cores, from the CPU this build used per row.

    All the CPU (workers' and main process's) spread over every core, or the main
    process's share alone if that is longer (it is one process), plus pool start and
    the post-hash steps measured at full size. Assumes dedicated cores and that
    Argon2 scales with them (``standard`` needs 19 MiB per worker: memory bandwidth
    may not keep up on 64 cores).
    """
    per_row_worker = max(build["worker_cpu_s"] - build["pool_start_worker_cpu_s"], 0.0)
    per_row_total = (per_row_worker + build["main_cpu_s"]) / build["rows"]
    per_row_main = build["main_cpu_s"] / build["rows"]
    out: dict[int, dict[str, Any]] = {}
    for n in cores:
        spread = records * per_row_total / n
        serial = records * per_row_main
        out[n] = {
            "all_cores_busy_s": spread,
            "main_process_s": serial,
            "total_s": max(spread, serial) + build["pool_start_s"] + post_hash["total_s"],
            "bound": "argon2" if spread >= serial else "main process",
        }
    return out


def build_markdown(builds: list[dict[str, Any]], rates: dict[str, dict[str, float]]) -> str:
    rate_rows = [
        [
            name,
            "t={0.time_cost}, m={0.memory_cost} KiB, p={0.parallelism}".format(PROFILES[name]),
            f"{r['ms_per_hash_cpu']:.3f} ms",
            f"{r['per_s_cpu']:,.0f}",
            f"{r['per_s_wall']:,.0f}",
        ]
        for name, r in rates.items()
    ]
    wall_rows = [
        [
            b["profile"],
            f"{b['rows']:,} rows / {b['keys']:,} keys",
            b["workers"],
            f"{b['wall_s']:.2f} s",
            f"{b['keys_per_s']:,.0f}",
            f"{b['ceiling_keys_per_s']:,.0f}",
            f"{100 * b['efficiency']:.0f} %",
            f"{100 * b['wall_outside_argon2_share']:.0f} %",
            f"{b['builder_hashing_phase_s']:.2f} s / {b['builder_after_hashing_s']:.2f} s",
            f"{b['pool_start_s']:.2f} s",
        ]
        for b in builds
    ]
    cpu_rows = [
        [
            b["profile"],
            f"{b['argon2_cpu_s']:.2f} s",
            f"{b['worker_cpu_s']:.2f} s ({b['pool_start_worker_cpu_s']:.2f} s)",
            f"{b['main_cpu_s']:.2f} s ({b['main_parse_cpu_s']:.2f} s)",
            f"{100 * b['cpu_outside_argon2_share']:.0f} %",
            f"{1e6 * b['main_cpu_s'] / b['rows']:.0f} µs",
        ]
        for b in builds
    ]
    return "\n".join(
        [
            "### Argon2, one core",
            "",
            table(
                ["profile", "parameters", "CPU per hash", "hashes/s (CPU)", "hashes/s (wall)"],
                rate_rows,
            ),
            "",
            "### Build against the Argon2 ceiling (workers x single-core rate), wall time",
            "",
            table(
                [
                    "profile",
                    "export",
                    "workers",
                    "wall",
                    "keys/s",
                    "ceiling keys/s",
                    "of ceiling",
                    "wall outside ideal Argon2",
                    "builder's split: hashing phase / after",
                    "pool start",
                ],
                wall_rows,
            ),
            "",
            "### Where the build's CPU goes",
            "",
            table(
                [
                    "profile",
                    "Argon2 (keys x CPU per hash)",
                    "pool workers (of which start-up)",
                    "main process (of which parsing)",
                    "CPU outside Argon2",
                    "main-process CPU per row",
                ],
                cpu_rows,
            ),
            "",
            "*wall outside ideal Argon2* = (wall - keys / ceiling) / wall. The builder's "
            "*hashing phase* (`BuildSummary.hashing_seconds`) runs from the start to the last "
            "digest, so it also holds CSV parsing, validation, pool start-up and IPC: it is not "
            "hashing time. *CPU outside Argon2* = (workers' + main process's CPU - Argon2 CPU) / "
            "their sum, which does not depend on what else the machine runs.",
        ]
    )


def projection_markdown(
    projections: dict[str, dict[int, dict[str, Any]]], post_hash: dict[str, float], records: int
) -> str:
    rows = [
        [name]
        + [
            duration(p[n]["total_s"])
            + (" (main process bound)" if p[n]["bound"] != "argon2" else "")
            for n in PROJECTED_CORES
        ]
        for name, p in projections.items()
    ]
    return "\n".join(
        [
            f"### Projected build time for {records:,} records, dedicated cores",
            "",
            table(["profile"] + [f"{n} cores" for n in PROJECTED_CORES], rows),
            "",
            "From the CPU each row cost above (workers' and main process's), spread over the "
            "cores, or the main process alone when it is the longer; plus pool start and the "
            "post-hash steps measured at full size here: sort+merge "
            f"{post_hash['sort_merge_s']:.1f} s, distinct count "
            f"{post_hash['distinct_count_s']:.1f} s, write {post_hash['write_s']:.1f} s.",
        ]
    )
