"""How long the load test's index build will take, said before it starts.

    python -m loadtests.build_estimate --rows 1000000 --profile fast --workers 0

Measured, not assumed: the CPU time of one keyed hash (Argon2id + HMAC) with the
profile on this core, now, and the keys per record of the generator (a record with
a usage name is hashed twice) from a small sample of the same seed. The build runs
one hash per key on each worker, so the estimate is ``keys x hash time / workers``
with a core per worker. The hash's CPU time already grows on a busy machine (3.8 ms
for ``fast`` on a quiet core here, ~7-11 ms at a load average of 10-16), but the
wait for a core does not show in it: the load average is printed beside the
estimate (the 1,000,000-record ``fast`` build once took 59 minutes on a busy 2-core
machine). The hash is timed by ``loadtests/harness.py``, as in the benchmarks.

No Locust import here.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loadtests.harness import best_argon2_cost
from lookup_index.generator import generate
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.profiles import PROFILES

#: Records generated to measure the keys per record (a quarter of a second).
SAMPLE_ROWS = 2_000
#: Wall seconds spent measuring the hash (the best of three rounds counts).
MEASURE_S = 0.3


@dataclass(frozen=True, slots=True)
class BuildEstimate:
    rows: int
    keys_per_row: float
    hash_ms: float
    workers: int

    @property
    def seconds(self) -> float:
        return self.rows * self.keys_per_row * self.hash_ms / 1000 / self.workers

    def describe(self) -> str:
        load = os.getloadavg()[0]
        return (
            f"expected build time {_duration(self.seconds)} with {self.workers} workers: "
            f"{self.rows:,} records x {self.keys_per_row:.3f} keys x {self.hash_ms:.2f} ms "
            f"of CPU per keyed hash (measured now on one core) / {self.workers} workers; "
            f"longer while other work shares the cores (load average now {load:.1f})"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def hash_cpu_ms(profile: str) -> float:
    """CPU milliseconds of one keyed hash on this thread (neighbours' load excluded): the
    cheapest of three short rounds, as the benchmarks measure it."""
    hasher = KeyedHasher(secrets.token_bytes(32), secrets.token_bytes(16), PROFILES[profile])
    cost = best_argon2_cost(hasher, min_seconds=MEASURE_S / 3, min_hashes=3)
    return cost.cpu_per_hash_s * 1000


def keys_per_row(seed: int) -> float:
    """Keys the builder will hash per generated record: one per valid record, one more
    per usage name (sampled with the run's seed)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = generate(SAMPLE_ROWS, seed, Path(tmp) / "sample.csv")
    return (summary.rows - summary.invalid_rows + summary.usage_names) / summary.rows


def estimate(rows: int, profile: str, workers: int, seed: int) -> BuildEstimate:
    return BuildEstimate(
        rows=rows,
        keys_per_row=keys_per_row(seed),
        hash_ms=hash_cpu_ms(profile),
        workers=workers or os.cpu_count() or 1,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.build_estimate")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--workers", type=int, default=0, help="0: all cores")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.workers < 0:
        parser.error("--rows must be positive and --workers not negative")
    print(estimate(args.rows, args.profile, args.workers, args.seed).describe())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
