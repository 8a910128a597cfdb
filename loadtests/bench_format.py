"""Lookup speed of format version 1 vs version 2 files, side by side in one run.

    .venv/bin/python -m loadtests.bench_format [--keys 1000000]

Writes the same random digests as a version 1 file (the old writer path), a
version 2 file (1-byte values, what `build` writes) and a version 2 file with
185-byte values (a category mask plus a 184-byte sealed contact, the width
docs/INDEX_FORMAT.md plans), then times ``IndexReader.lookup_mask`` on the
same mix of hits and misses, rounds interleaved so drifting load hits all
three alike. Prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lookup_index.index_format import write_index
from lookup_index.reader import IndexReader
from tests.lookup_index.helpers import make_header

PROBES = 200_000
ROUNDS = 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    digests = np.unique(np.frombuffer(rng.bytes(16 * args.keys), dtype="S16"))
    count = len(digests)
    masks = rng.integers(1, 256, count, dtype=np.uint8)
    raw = digests.tobytes()
    hits = [raw[i * 16 : i * 16 + 16] for i in rng.integers(0, count, PROBES // 2)]
    misses = [rng.bytes(16) for _ in range(PROBES // 2)]
    probes = [d for pair in zip(hits, misses, strict=True) for d in pair]
    wide = np.zeros((count, 185), np.uint8)
    wide[:, 0] = masks
    wide_fields = (
        {"name": "categories", "offset": 0, "size": 1, "type": "u8_bitmask"},
        {"name": "sealed_contact", "offset": 1, "size": 184, "type": "x25519_sealed_v1"},
    )
    variants = {
        "v1 (1-byte values)": (make_header(count, format_version=1), masks),
        "v2 (1-byte values)": (make_header(count), masks),
        "v2 (185-byte values)": (
            make_header(count, value_size=185, value_fields=wide_fields),
            wide,
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-format-") as tmp:
        readers = {}
        for number, (name, (header, values)) in enumerate(variants.items()):
            path = Path(tmp) / f"{number}.bin"
            write_index(path, header, digests, values)
            readers[name] = IndexReader.open(path)
        try:
            for reader in readers.values():
                for digest in probes[:1000]:  # warm the page cache and the code path
                    reader.lookup_mask(digest)
            names = list(readers)
            for round_number in range(ROUNDS):
                # Each file takes each position in turn: no file always runs first.
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    reader = readers[name]
                    lookup = reader.lookup_mask
                    started = time.perf_counter()
                    for digest in probes:
                        lookup(digest)
                    timings[name].append((time.perf_counter() - started) / len(probes))
        finally:
            for reader in readers.values():
                reader.close()
    base = statistics.median(timings["v1 (1-byte values)"])
    print(f"## Lookup, format v1 vs v2 ({count:,} keys, {PROBES:,} probes, half hits)\n")
    print("| file | median µs/lookup | lookups/s | vs v1 |\n|---|---:|---:|---:|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e6:.2f} | {1 / median:,.0f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
