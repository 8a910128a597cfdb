"""Benchmark of the lookup index: lookups against SQLite and a Python set, build against Argon2.

The design claims that a 15M-record index is ~17 bytes per key
on disk, shared by every worker through the page cache, answers a lookup in a
few microseconds whether the identity is in it or not, and the build is bound
by Argon2 alone. This script measures each claim side by side, in one run:

1. **Lookups.** ``--keys`` random 16-byte digests (default 15,000,000), sorted,
   written with ``write_index`` (no Argon2 needed: digests are uniformly
   random, like HMAC output). Times ``IndexReader.open`` without and with the
   checksum, then single-threaded ``lookup_mask`` over ``--queries`` queries,
   half hits, half misses, reported separately. The same digests go into SQLite
   (``WITHOUT ROWID`` table, queried one by one through ``sqlite3``'s cached
   prepared statement) and into a Python ``set`` and ``dict``. Reports bytes per
   key on disk or in memory, and the reader's RSS growth after touching every
   page (file-backed, so shared by every worker).
2. **Build.** The single-core Argon2 rate of each profile (``KeyedHasher.digest``
   in a loop, CPU time of this thread), then ``build_index`` with every core on
   a generated export (``--build PROFILE=ROWS``), reported as a share of the
   ceiling ``workers x single-core rate``. ``BuildSummary.hashing_seconds`` runs
   from the start of the build to the last digest, so it also holds CSV parsing,
   validation, pool start-up and IPC: not a fair split. The benchmark instead
   accounts for CPU: the pool workers' (polled with psutil), the main process's,
   and the Argon2 share of it (keys x CPU per hash), and times pool start-up and
   the post-hash steps (sort, merge, distinct count, write) at full size. From
   the CPU per row it projects ``--records`` (15M) on 2, 16 and 64 cores.
3. Prints Markdown tables (``--markdown FILE`` also writes them), ``--json FILE``
   writes every figure.

Usage::

    python loadtests/bench_index.py                 # the defaults: ~3-5 minutes on 2 cores
    python loadtests/bench_index.py --keys 1000000 --build fast=1000 --skip sqlite
    python loadtests/bench_index.py --markdown docs/bench-index.md --json bench-index.json

CPU time (``time.thread_time``) is reported next to wall time: on a shared
machine wall time also measures the neighbours, CPU time mostly does not.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from lookup_index.builder import (
    BuildOptions,
    _merge_duplicates,
    build_index,
)
from lookup_index.categories import CATEGORIES, mask_of
from lookup_index.csv_input import ExportReader
from lookup_index.executors import ProcessPoolChunkExecutor
from lookup_index.generator import generate
from lookup_index.index_format import DigestArray, IndexHeader, ValueArray, write_index
from lookup_index.keyed_hash import KeyedHasher, key_check_value
from lookup_index.profiles import PROFILES, TEST, Argon2Profile
from lookup_index.reader import IndexReader
from lookup_index.row_stretching import canonical_keys

DEFAULT_KEYS = 15_000_000
DEFAULT_QUERIES = 300_000
DEFAULT_BUILDS = ("test=20000", "fast=4000", "standard=400")
PROJECTED_RECORDS = 15_000_000
PROJECTED_CORES = (2, 16, 64)
#: The issue's targets for a 15M index.
TARGET_LOOKUPS_PER_S = 300_000
TARGET_BYTES_PER_KEY = 18.0
DIGEST = 16


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Span:
    """Wall and CPU (this thread) seconds of one measured piece of work."""

    wall_s: float
    cpu_s: float


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.span = Span(time.perf_counter() - self._wall, time.thread_time() - self._cpu)


def memory_kib() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process in KiB (Linux); empty elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    wanted = ("VmRSS", "RssAnon", "RssFile")
    return {
        key: int(rest.split()[0])
        for key, _, rest in (line.partition(":") for line in lines)
        if key in wanted
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- 1. lookups ---------------------------------------------------------------------------


def random_sorted_digests(count: int, rng: np.random.Generator) -> tuple[DigestArray, ValueArray]:
    """``count`` unique uniform random digests in bytewise order, and random category masks.

    Sorting 16-byte strings in numpy takes ~10 s for 15M; sorting 8-byte integers
    takes ~1 s. A digest is drawn as a big-endian 8-byte prefix and a random 8-byte
    suffix: sorted prefixes give sorted digests with the same distribution as
    sorting random 16-byte strings, unless two prefixes collide (~count**2 / 2**65).
    """
    prefixes = np.sort(np.frombuffer(rng.bytes(8 * count), dtype=np.uint64))
    if np.any(prefixes[1:] == prefixes[:-1]):
        raise RuntimeError("two random 8-byte prefixes collided; run again with another --seed")
    pairs = np.empty((count, 2), dtype=">u8")
    pairs[:, 0] = prefixes
    pairs[:, 1] = np.frombuffer(rng.bytes(8 * count), dtype=np.uint64)
    digests = pairs.view(f"S{DIGEST}").reshape(count)
    # Values are never 0, so a hit and a miss can be told apart from the value alone.
    return np.ascontiguousarray(digests), rng.integers(1, 256, count, dtype=np.uint8)


def header_for(count: int) -> IndexHeader:
    return IndexHeader(
        profile=TEST,
        salt=secrets.token_bytes(16),
        key_check=key_check_value(secrets.token_bytes(32)),
        count=count,
        incident_id="bench",
        incident_label="benchmark",
        incident_categories=("identity",),
        categories=CATEGORIES,
        created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


@dataclass(frozen=True)
class Rates:
    """Best-of-N lookups per second for hits and misses, by wall and by CPU time."""

    hits_wall: float
    misses_wall: float
    hits_cpu: float
    misses_cpu: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v) for k, v in self.__dict__.items()}


def measure_rates(
    lookup: Callable[[bytes], object], hits: list[bytes], misses: list[bytes], repeats: int
) -> Rates:
    """Alternate hit and miss passes ``repeats`` times and keep each one's best pass.

    The best pass is the one least disturbed by other processes; alternating keeps a
    drift in machine load from favouring one kind.
    """
    best: dict[str, Span] = {}
    for _ in range(repeats):
        for name, queries in (("hits", hits), ("misses", misses)):
            with Stopwatch() as watch:
                for query in queries:
                    lookup(query)
            if name not in best or watch.span.cpu_s < best[name].cpu_s:
                best[name] = watch.span
    return Rates(
        hits_wall=len(hits) / best["hits"].wall_s,
        misses_wall=len(misses) / best["misses"].wall_s,
        hits_cpu=len(hits) / best["hits"].cpu_s,
        misses_cpu=len(misses) / best["misses"].cpu_s,
    )


def check_answers(
    lookup: Callable[[bytes], object],
    hits: list[bytes],
    misses: list[bytes],
    is_found: Callable[[object], bool],
) -> None:
    """A benchmark of wrong answers is worthless: every hit found, every miss not."""
    sample = 2000
    if not all(is_found(lookup(q)) for q in hits[:sample]):
        raise AssertionError("a key that is in the index was not found")
    if any(is_found(lookup(q)) for q in misses[:sample]):
        raise AssertionError("a key that is not in the index was found")


def bench_lookups(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    count, queries = args.keys, args.queries
    rng = np.random.default_rng(args.seed)
    result: dict[str, Any] = {"keys": count, "queries": queries, "repeats": args.repeats}

    log(f"lookup: drawing {count:,} random digests")
    digests, values = random_sorted_digests(count, rng)
    raw = digests.tobytes()  # full 16 bytes: numpy drops trailing NULs of S16 elements
    positions = rng.integers(0, count, queries // 2)
    hits = [raw[i * DIGEST : (i + 1) * DIGEST] for i in positions.tolist()]
    candidates = np.frombuffer(rng.bytes(DIGEST * (queries // 2)), dtype="S16")
    where = np.minimum(np.searchsorted(digests, candidates), count - 1)
    fresh = candidates[digests[where] != candidates]  # a collision is ~impossible; be exact
    misses = [fresh.tobytes()[i * DIGEST : (i + 1) * DIGEST] for i in range(len(fresh))]

    index = workdir / "bench.index"
    log("lookup: writing the index")
    with Stopwatch() as watch:
        size = write_index(index, header_for(count), digests, values)
    result["index"] = {
        "write_s": round(watch.span.wall_s, 3),
        "file_bytes": size,
        "bytes_per_key": size / count,
    }

    before_open = memory_kib()
    with Stopwatch() as watch:
        reader = IndexReader.open(index, verify_checksum=False)
    result["index"]["open_s"] = watch.span.wall_s
    after_open = memory_kib()
    log(f"lookup: index, {queries:,} queries x {args.repeats}")
    check_answers(reader.lookup_mask, hits, misses, lambda r: bool(r[0]))  # type: ignore[index]
    rates = measure_rates(reader.lookup_mask, hits, misses, args.repeats)
    result["index"]["rates"] = rates.as_dict()
    after_lookups = memory_kib()
    with Stopwatch() as watch:
        reader.verify_checksum()  # reads every byte: every page is now resident
    result["index"]["verify_checksum_s"] = watch.span.wall_s
    touched = memory_kib()
    reader.close()
    if before_open:
        result["index"]["rss_kib"] = {
            "before_open": before_open,
            "after_open": after_open,
            "after_lookups": after_lookups,
            "after_touching_all_pages": touched,
            "growth_after_touching_all": touched["VmRSS"] - before_open["VmRSS"],
            "file_backed_growth": touched["RssFile"] - before_open["RssFile"],
        }

    if "sqlite" not in args.skip:
        result["sqlite"] = bench_sqlite(workdir, raw, values, hits, misses, args.repeats)
    if "python" not in args.skip:
        result["python"] = bench_python(raw, values, hits, misses, args.repeats)
    return result


def bench_sqlite(
    workdir: Path,
    raw: bytes,
    values: ValueArray,
    hits: list[bytes],
    misses: list[bytes],
    repeats: int,
) -> dict[str, Any]:
    count = len(values)
    path = workdir / "bench.sqlite"
    log(f"sqlite: inserting {count:,} rows")
    with Stopwatch() as watch:
        con = sqlite3.connect(path)
        # Build-time settings only; they do not change the file's layout or the query plan.
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("CREATE TABLE k(d BLOB PRIMARY KEY, v INTEGER) WITHOUT ROWID")
        rows = zip(
            (raw[o : o + DIGEST] for o in range(0, DIGEST * count, DIGEST)),
            values.tolist(),
            strict=True,
        )
        with con:
            con.executemany("INSERT INTO k VALUES (?, ?)", rows)
        con.close()
    result: dict[str, Any] = {
        "build_s": round(watch.span.wall_s, 1),
        "file_bytes": path.stat().st_size,
        "bytes_per_key": path.stat().st_size / count,
    }
    # Default settings (2 MiB page cache, reads through the OS), then memory-mapped like
    # the index, the fairer comparison for a read-only file.
    for label, pragma in (("default", None), ("mmap", "PRAGMA mmap_size=4294967296")):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        if pragma:
            con.execute(pragma)
        cursor = con.cursor()
        sql = "SELECT v FROM k WHERE d=?"  # sqlite3 caches the prepared statement by its text

        def query(digest: bytes, cursor: sqlite3.Cursor = cursor, sql: str = sql) -> object:
            return cursor.execute(sql, (digest,)).fetchone()

        log(f"sqlite ({label}): {len(hits) + len(misses):,} queries x {repeats}")
        check_answers(query, hits, misses, lambda r: r is not None)
        result[f"rates_{label}"] = measure_rates(query, hits, misses, repeats).as_dict()
        con.close()
    return result


def bench_python(
    raw: bytes, values: ValueArray, hits: list[bytes], misses: list[bytes], repeats: int
) -> dict[str, Any]:
    count = len(values)
    result: dict[str, Any] = {}
    gc.collect()
    gc.disable()  # a collection pass over 15M objects would land inside a timing
    try:
        log(f"python: set of {count:,} bytes")
        rss0 = memory_kib().get("VmRSS", 0)
        keys = [raw[o : o + DIGEST] for o in range(0, DIGEST * count, DIGEST)]
        digest_set = set(keys)
        key_bytes = sys.getsizeof(keys[0]) * count  # every key is a 16-byte bytes object
        del keys
        rss1 = memory_kib().get("VmRSS", 0)
        check_answers(digest_set.__contains__, hits, misses, bool)
        result["set"] = {
            "bytes_per_key_getsizeof": (sys.getsizeof(digest_set) + key_bytes) / count,
            "bytes_per_key_rss": (rss1 - rss0) * 1024 / count if rss0 else None,
            "rates": measure_rates(digest_set.__contains__, hits, misses, repeats).as_dict(),
        }
        del digest_set
        gc.collect()

        log(f"python: dict of {count:,} bytes -> int")
        rss2 = memory_kib().get("VmRSS", 0)
        mapping = dict(
            zip(
                (raw[o : o + DIGEST] for o in range(0, DIGEST * count, DIGEST)),
                values.tolist(),
                strict=True,
            )
        )
        rss3 = memory_kib().get("VmRSS", 0)
        check_answers(mapping.get, hits, misses, lambda r: r is not None)
        # Values 0-255 are cached small ints: only the table and the keys cost memory.
        result["dict"] = {
            "bytes_per_key_getsizeof": (sys.getsizeof(mapping) + key_bytes) / count,
            "bytes_per_key_rss": (rss3 - rss2) * 1024 / count if rss2 else None,
            "rates": measure_rates(mapping.get, hits, misses, repeats).as_dict(),
        }
        del mapping
    finally:
        gc.enable()
        gc.collect()
    return result


# --- 2. build -----------------------------------------------------------------------------


def argon2_rate(profile: Argon2Profile, min_seconds: float, min_hashes: int) -> dict[str, float]:
    """Keyed hashes per second on one core, by this thread's CPU time and by wall time."""
    hasher = KeyedHasher(secrets.token_bytes(32), secrets.token_bytes(16), profile)
    done = 0
    with Stopwatch() as watch:
        started = time.perf_counter()
        while done < min_hashes or time.perf_counter() - started < min_seconds:
            # The shape of a real canonical identity: v1|NIR body|ISO date|NAME.
            hasher.digest(b"v1|18503751%05d|1985-03-12|DUPONTDURAND" % done)
            done += 1
    return {
        "hashes": done,
        "per_s_cpu": done / watch.span.cpu_s,
        "per_s_wall": done / watch.span.wall_s,
        "ms_per_hash_cpu": 1000 * watch.span.cpu_s / done,
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
        unique_digests, unique_values = _merge_duplicates(digests, values)
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


# --- report -------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def lookup_markdown(result: dict[str, Any]) -> str:
    index = result["index"]
    rates = index["rates"]
    rows: list[list[object]] = []

    def row(name: str, size: str, r: dict[str, float], note: str) -> None:
        rows.append(
            [
                name,
                size,
                f"{r['hits_wall']:,.0f}",
                f"{r['misses_wall']:,.0f}",
                f"{r['hits_cpu']:,.0f}",
                f"{r['misses_cpu']:,.0f}",
                note,
            ]
        )

    row(
        "index (mmap, `lookup_mask`)",
        f"{index['bytes_per_key']:.2f} B/key on disk",
        rates,
        f"open {index['open_s'] * 1000:.2f} ms, checksum {index['verify_checksum_s']:.2f} s",
    )
    sqlite = result.get("sqlite")
    if sqlite:
        size = f"{sqlite['bytes_per_key']:.2f} B/key on disk"
        row(
            "SQLite, default cache",
            size,
            sqlite["rates_default"],
            f"built in {sqlite['build_s']} s",
        )
        row("SQLite, mmap_size=4 GiB", size, sqlite["rates_mmap"], "")
    python = result.get("python")
    if python:
        for kind in ("set", "dict"):
            p = python[kind]
            rss = p["bytes_per_key_rss"]
            size = f"{p['bytes_per_key_getsizeof']:.0f} B/key in RAM" + (
                f" (RSS {rss:.0f})" if rss else ""
            )
            row(f"Python {kind} of bytes", size, p["rates"], "per process, not shared")
    text = [
        f"### Lookups: {result['keys']:,} keys, {result['queries']:,} queries "
        f"(half hits, half misses), best of {result['repeats']}, one thread",
        "",
        table(
            [
                "structure",
                "size",
                "hits/s (wall)",
                "misses/s (wall)",
                "hits/s (CPU)",
                "misses/s (CPU)",
                "notes",
            ],
            rows,
        ),
    ]
    if sqlite:
        ratio = rates["hits_cpu"] / sqlite["rates_default"]["hits_cpu"]
        ratio_miss = rates["misses_cpu"] / sqlite["rates_default"]["misses_cpu"]
        ratio_mmap = rates["hits_cpu"] / sqlite["rates_mmap"]["hits_cpu"]
        text += [
            "",
            f"Index / SQLite lookups per CPU-second: {ratio:.2f}x on hits, "
            f"{ratio_miss:.2f}x on misses (default SQLite), {ratio_mmap:.2f}x on hits "
            "(memory-mapped SQLite).",
        ]
    hit_miss = rates["misses_cpu"] / rates["hits_cpu"]
    text.append(
        f"Miss / hit cost ratio of the index: {1 / hit_miss:.3f} (1.000 = a hit and a miss "
        "cost the same)."
    )
    rss = index.get("rss_kib")
    if rss:
        base = rss["before_open"]["VmRSS"]
        opened = (rss["after_open"]["VmRSS"] - base) / 1024
        queried = (rss["after_lookups"]["VmRSS"] - base) / 1024
        text.append(
            f"Reader RSS: +{opened:.1f} MiB after open, +{queried:.0f} MiB after the queries, "
            f"+{rss['growth_after_touching_all'] / 1024:.0f} MiB after touching every page, of "
            f"which {rss['file_backed_growth'] / 1024:.0f} MiB file-backed (page cache, shared by "
            f"every worker; the file is {index['file_bytes'] / 2**20:.0f} MiB)."
        )
    return "\n".join(text)


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


def verdicts(result: dict[str, Any]) -> list[str]:
    """Plain statements against the issue's targets (judged on CPU time, wall time shown)."""
    lines: list[str] = []
    lookups = result.get("lookups")
    if not lookups:
        return lines
    index, keys = lookups["index"], lookups["keys"]
    cpu = min(index["rates"]["hits_cpu"], index["rates"]["misses_cpu"])
    wall = min(index["rates"]["hits_wall"], index["rates"]["misses_wall"])
    load = result["environment"]["load_average_start"]
    if cpu < TARGET_LOOKUPS_PER_S:
        lines.append(
            f"- BELOW TARGET: {cpu:,.0f} lookups per CPU-second ({wall:,.0f}/s wall) for "
            f"{keys:,} keys; the target is {TARGET_LOOKUPS_PER_S:,}/s."
        )
    elif wall < TARGET_LOOKUPS_PER_S:
        lines.append(
            f"- OK on CPU, BELOW on wall time: {cpu:,.0f} lookups per CPU-second but "
            f"{wall:,.0f}/s wall for {keys:,} keys (target {TARGET_LOOKUPS_PER_S:,}/s); the "
            f"machine was shared (load average {load}), so this thread got part of a core."
        )
    else:
        lines.append(
            f"- OK: {cpu:,.0f} lookups per CPU-second, {wall:,.0f}/s wall, for {keys:,} keys "
            f"(target {TARGET_LOOKUPS_PER_S:,}/s)."
        )
    size = index["bytes_per_key"]
    verdict = "ABOVE TARGET" if size > TARGET_BYTES_PER_KEY else "OK"
    lines.append(f"- {verdict}: {size:.2f} bytes/key on disk (target <= {TARGET_BYTES_PER_KEY}).")
    return lines


def environment() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sqlite": sqlite3.sqlite_version,
        "load_average_start": load_average(),
    }


# --- main ---------------------------------------------------------------------------------


def parse_builds(specs: Sequence[str]) -> list[tuple[Argon2Profile, int]]:
    builds = []
    for spec in specs:
        name, _, rows = spec.partition("=")
        if name not in PROFILES or not rows.isdigit() or int(rows) < 1:
            raise SystemExit(
                f"bench_index: bad --build {spec!r}: expected PROFILE=ROWS with PROFILE in "
                + ", ".join(sorted(PROFILES))
            )
        builds.append((PROFILES[name], int(rows)))
    return builds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=DEFAULT_KEYS,
        help="digests in the lookup index (default: %(default)s)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=DEFAULT_QUERIES,
        help="lookups per pass, half hits, half misses (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="passes per structure; the best is kept (default: %(default)s)",
    )
    parser.add_argument(
        "--build",
        action="append",
        metavar="PROFILE=ROWS",
        help=f"a build to measure; repeatable (default: {' '.join(DEFAULT_BUILDS)})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="build workers (default: all cores, %(default)s)",
    )
    parser.add_argument(
        "--argon2-seconds",
        type=float,
        default=2.0,
        help="minimum time per single-core Argon2 rate (default: %(default)s)",
    )
    parser.add_argument(
        "--records",
        type=int,
        default=PROJECTED_RECORDS,
        help="records to project the build time for (default: %(default)s)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["lookup", "sqlite", "python", "build"],
        help="leave a part out; repeatable",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tmpdir", type=Path, help="where to write the temporary files (default: the system's)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    builds = parse_builds(args.build or DEFAULT_BUILDS)
    if args.keys < 2 or args.queries < 2:
        parser.error("--keys and --queries must be at least 2")

    started = time.perf_counter()
    result: dict[str, Any] = {
        "environment": environment(),
        "started": datetime.now(UTC).isoformat(),
    }
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-index-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        if "lookup" not in args.skip:
            result["lookups"] = bench_lookups(args, workdir)
            sections.append(lookup_markdown(result["lookups"]))
            gc.collect()
        if "build" not in args.skip:
            profiles = list(dict.fromkeys(p for p, _ in builds))
            rates = {}
            for profile in profiles:
                log(f"argon2: single-core rate, {profile.name}")
                rates[profile.name] = argon2_rate(profile, args.argon2_seconds, min_hashes=20)
            measured = [
                bench_build(p, rows, args.workers, rates[p.name], args, workdir)
                for p, rows in builds
            ]
            post_hash = post_hash_seconds(args.records, workdir, args.seed)
            projections = {
                b["profile"]: project(b, post_hash, args.records, PROJECTED_CORES) for b in measured
            }
            result["argon2"] = rates
            result["builds"] = measured
            result["post_hash"] = post_hash
            result["projections"] = projections
            sections.append(build_markdown(measured, rates))
            sections.append(projection_markdown(projections, post_hash, args.records))
    result["environment"]["load_average_end"] = load_average()
    result["seconds"] = time.perf_counter() - started
    env = result["environment"]
    head = (
        f"## Index benchmark ({env['cpu']}, {env['cores']} cores, Python {env['python']}, "
        f"numpy {env['numpy']}, SQLite {env['sqlite']}; load average "
        f"{env['load_average_start']} -> {env['load_average_end']}; {duration(result['seconds'])})"
    )
    checks = verdicts(result)
    if checks:
        sections.append("### Against the targets\n\n" + "\n".join(checks))
    report = "\n\n".join([head, *sections]) + "\n"
    print(report)
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
