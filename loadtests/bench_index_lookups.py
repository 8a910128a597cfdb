"""Part 1 of the index benchmark (``bench_index.py``): lookups in the memory-mapped index
against SQLite and a Python ``set``/``dict``, on the same random digests."""

from __future__ import annotations

import argparse
import gc
import secrets
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.bench_report import log, table
from loadtests.harness import Span, Stopwatch, memory_kib
from lookup_index.categories import CATEGORIES
from lookup_index.index_format import DigestArray, IndexHeader, ValueArray, write_index
from lookup_index.keyed_hash import key_check_value
from lookup_index.profiles import TEST
from lookup_index.reader import IndexReader

DIGEST = 16


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
