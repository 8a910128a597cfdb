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
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from loadtests.bench_index_build import (
    PROJECTED_CORES,
    argon2_rate,
    bench_build,
    build_markdown,
    post_hash_seconds,
    project,
    projection_markdown,
)
from loadtests.bench_index_lookups import bench_lookups, lookup_markdown
from loadtests.bench_report import duration, log
from loadtests.harness import load_average
from lookup_index.profiles import PROFILES, Argon2Profile

DEFAULT_KEYS = 15_000_000
DEFAULT_QUERIES = 300_000
DEFAULT_BUILDS = ("test=20000", "fast=4000", "standard=400")
PROJECTED_RECORDS = 15_000_000
#: The issue's targets for a 15M index.
TARGET_LOOKUPS_PER_S = 300_000
TARGET_BYTES_PER_KEY = 18.0


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
