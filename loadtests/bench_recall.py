"""Recall, false matches, index size and build time of name-variant matching (issue 14).

    .venv/bin/python -m loadtests.bench_recall [--rows 200000] [--records 5000] [--workers 1]

Generates an export of ``--rows`` synthetic patients and the typings of
``--records`` of them (lookup_index/patient_typings.py: how patients type
their identity, and near misses), then, in one run and on the same export:

- builds the index the way `lookup-index build` does (identity rules v2 with
  the builder's name-variant keys), and the same index with the variant keys
  switched off: "exact matching" of the canonical name, one key per birth name
  and usage name, as before issue 14;
- measures both with ``lookup-index recall`` (recall per variant kind, false
  matches per near-miss kind), and compares their keys, file sizes and build
  times.

The `test` Argon2 profile keeps it to minutes (matching does not depend on the
profile); at the `fast` and `standard` profiles Argon2 is nearly all of a
build's time, so build time grows like the keys hashed, reported beside the
measured ratio. Prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from lookup_index import row_stretching
from lookup_index.builder import BuildOptions, BuildSummary, build_index
from lookup_index.generator import generate
from lookup_index.keyed_hash import stretch
from lookup_index.profiles import FAST, TEST
from lookup_index.recall import RecallReport, format_report, measure_recall

PEPPER = bytes(range(32))


def _build(export: Path, out: Path, workers: int, variants: bool) -> tuple[BuildSummary, float]:
    """The build's summary and its CPU seconds (this process: one worker builds inline, so
    the figure holds on a loaded machine, where wall time measures the neighbours)."""
    options = BuildOptions(export, out, PEPPER, TEST, workers=workers, max_reject_rate=5)
    started = time.process_time()
    if variants:
        summary = build_index(options)
    else:
        # Forked pool workers inherit the patch: the same code path, minus the variant keys.
        with mock.patch.object(row_stretching, "name_forms", return_value={}):
            summary = build_index(options)
    return summary, time.process_time() - started


def _fast_ms_per_key(rounds: int = 40) -> float:
    """CPU milliseconds of one `fast` Argon2id (CPU, not wall: the machine may be shared)."""
    started = time.process_time()
    for i in range(rounds):
        stretch(b"v2|1850375123456|1985-03-12|DUPONT%d" % i, bytes(16), FAST)
    return 1000 * (time.process_time() - started) / rounds


def _row(name: str, summary: BuildSummary, cpu: float, report: RecallReport) -> str:
    worst = min(report.kind_recall(k) for k in report.typed)
    multiplicity = summary.indexed_keys / summary.distinct_records
    return (
        f"| {name} | {summary.indexed_keys:,} | {multiplicity:.3f}"
        f" | {summary.file_size / 1e6:.2f} MB | {cpu:.1f} s | {report.recall:.2f} %"
        f" | {worst:.2f} % | {report.false_match_count} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--records", type=int, default=5000, help="records whose typings to try")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recall-") as tmp:
        directory = Path(tmp)
        export, typings = directory / "export.csv", directory / "variants.csv"
        started = time.perf_counter()
        generated = generate(
            args.rows, args.seed, export, variants_out=typings, variant_records=args.records
        )
        generate_s = time.perf_counter() - started
        builds, cpu, reports = {}, {}, {}
        for name, variants in (("exact", False), ("variants", True)):
            out = directory / f"{name}.bin"
            builds[name], cpu[name] = _build(export, out, args.workers, variants)
            reports[name] = measure_recall(directory / f"{name}.bin", PEPPER, typings)
    exact, tolerant = builds["exact"], builds["variants"]
    keys_ratio = tolerant.indexed_keys / exact.indexed_keys
    hashed_ratio = tolerant.keys_hashed / exact.keys_hashed
    fast_ms = _fast_ms_per_key()
    print(
        f"## Recall and name variants (bench_recall.py)\n\n"
        f"{args.rows:,} generated rows ({generate_s:.0f} s to generate), typings of "
        f"{args.records:,} records ({generated.typings:,} lines), `test` profile, "
        f"{args.workers} worker(s).\n"
    )
    print(
        "| keys written | keys | keys per record | file | build CPU | recall | worst kind "
        "| false matches |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(_row("one per birth/usage name", exact, cpu["exact"], reports["exact"]))
    print(_row("+ variant keys (`build`)", tolerant, cpu["variants"], reports["variants"]))
    print()
    print(
        f"Keys: x{keys_ratio:.3f} (target <= 1.5); keys hashed x{hashed_ratio:.3f}; "
        f"file x{tolerant.file_size / exact.file_size:.3f}; build CPU at the test profile "
        f"x{cpu['variants'] / cpu['exact']:.2f}. At `fast` ({fast_ms:.1f} ms per key here) "
        f"Argon2 alone is {exact.keys_hashed * fast_ms / 1000:.0f} s vs "
        f"{tolerant.keys_hashed * fast_ms / 1000:.0f} s for this export: build time grows "
        f"x{hashed_ratio:.2f}, like the keys hashed."
    )
    print(f"Variant keys: {json.dumps(tolerant.variant_keys)}\n")
    for name in ("exact", "variants"):
        print(f"recall with {name} matching:\n```\n{format_report(reports[name])}\n```")
    failures = reports["variants"].failures()
    if keys_ratio > 1.5:
        failures.append(f"keys x{keys_ratio:.3f} > 1.5")
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
