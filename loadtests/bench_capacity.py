"""Capacity benchmark: how many checks per second one host serves, at what latency, and
how the index build time grows with the record count; the inputs of the capacity model
in docs/BENCHMARKS.md.

    .venv/bin/python loadtests/bench_capacity.py                  # everything (~25 min)
    .venv/bin/python loadtests/bench_capacity.py --skip-build     # the capacity curve only

1. Argon2id cost per profile (CPU time of one thread, best of three runs).
2. Capacity curve, for 1 and 2 API workers sharing one Redis: closed-loop Locust users
   (no think time) in growing numbers until throughput stops growing (the CPU is
   saturated). The response floor stays on (it shapes the latency); the per-identity
   and global limits are raised out of the way, the per-network limit is kept (each
   request comes from a fresh network, as production's patients do, so the Redis work
   per check is production's). Per step: achieved checks/s, p50/p95/p99, and the API's
   CPU time per check (from /proc via psutil), which the model uses.
3. Build time vs record count with one profile.

Results: ``loadtests/results/bench/capacity-<time>.json`` and PNGs in ``docs/img/``.
Locust shares the machine's cores with the API here; its CPU time is recorded too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from loadtests.bench_capacity_model import (
    Step,
    capacity_model,
    make_plots,
    render_markdown,
    vars_of,
)
from loadtests.harness import (
    api_server,
    best_argon2_cost,
    process_tree_cpu_seconds,
    redis_server,
)
from loadtests.thresholds import read_stats
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CHECK_NAME = "capacity: POST /v1/check"
#: Limits that never trip during the measurement (see the module docstring).
BENCH_LIMITS = {
    "SELFCHECK_LIMITS_PER_IDENTITY": "1000000/day",
    "SELFCHECK_LIMITS_PER_NIR_PREFIX": "1000000/day",
    "SELFCHECK_GLOBAL_LIMIT": "10000/second",
}


# --- 1. Argon2 --------------------------------------------------------------------------
def argon2_ms(profile: str, seconds: float = 1.5, rounds: int = 3) -> float:
    """CPU milliseconds of one keyed Argon2id hash (this thread's CPU time, so the
    neighbours' load does not count); the best of ``rounds`` runs."""
    hasher = KeyedHasher(secrets.token_bytes(32), secrets.token_bytes(16), PROFILES[profile])
    return best_argon2_cost(hasher, min_seconds=seconds, rounds=rounds).cpu_per_hash_s * 1000


# --- servers ------------------------------------------------------------------------------
@contextlib.contextmanager
def servers(dataset: Path, workers: int, work_dir: Path) -> Iterator[tuple[str, psutil.Process]]:
    """Redis and the API (``workers`` processes) on loopback; stopped on exit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with redis_server(work_dir / "redis") as redis:
        env = {
            "SELFCHECK_INDEX_PATH": str(dataset / "index.bin"),
            "SELFCHECK_KEY_FILE": str(dataset / "loadtest.key"),
            "SELFCHECK_ALLOW_TEST_PROFILE": "true",  # its datasets may use the `test` profile
            "SELFCHECK_RATE_LIMIT_STORAGE": redis.url,
            "SELFCHECK_WORKERS": str(workers),
            # Benchmark only: Locust on loopback presents each client's network.
            "SELFCHECK_TRUSTED_PROXIES": "127.0.0.1/32",
            "SELFCHECK_LOG_LEVEL": "warning",
            **BENCH_LIMITS,
        }
        log = work_dir / f"api-{workers}w.log"
        with api_server(env, log, timeout=120, ready_path="/readyz") as api:
            yield api.url, psutil.Process(api.process.pid)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- 2. capacity curve -----------------------------------------------------------------------
def run_step(
    url: str, api: psutil.Process, users: int, seconds: int, probes: Path, floor_ms: int, out: Path
) -> Step:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LOADTEST_PROBES": str(probes),
    }
    prefix = out / f"users-{users}"
    api_before, locust_before = process_tree_cpu_seconds(api), _children_cpu()
    machine_before = psutil.cpu_times()
    started = time.monotonic()
    subprocess.run(
        [str(VENV_BIN / "locust"), "-f", str(ROOT / "loadtests" / "capacity_locustfile.py"),
         "--headless", "--host", url, "--users", str(users), "--spawn-rate", str(users),
         "--run-time", f"{seconds}s", "--stop-timeout", "5", "--csv", str(prefix),
         "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"],
        env=env, check=True, timeout=seconds + 90,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.monotonic() - started
    api_cpu = process_tree_cpu_seconds(api) - api_before
    machine_after = psutil.cpu_times()
    busy_before = sum(machine_before) - machine_before.idle - getattr(machine_before, "iowait", 0)
    busy_after = sum(machine_after) - machine_after.idle - getattr(machine_after, "iowait", 0)
    total = sum(machine_after) - sum(machine_before)
    stats = read_stats(Path(f"{prefix}_stats.csv"))[CHECK_NAME]
    return Step(
        users=users,
        offered_rps=users * 1000 / floor_ms,
        achieved_rps=stats.rps,
        checks=stats.requests,
        failures=stats.failures,
        p50_ms=stats.p50_ms,
        p95_ms=stats.p95_ms,
        p99_ms=stats.p99_ms,
        api_cpu_s=api_cpu,
        api_cores=api_cpu / wall,
        api_cpu_ms_per_check=api_cpu * 1000 / stats.requests if stats.requests else 0.0,
        locust_cpu_s=_children_cpu() - locust_before,
        machine_busy=(busy_after - busy_before) / total if total else 0.0,
    )


def capacity_curve(
    dataset: Path, workers: int, users: Sequence[int], seconds: int, floor_ms: int, out: Path
) -> list[Step]:
    steps: list[Step] = []
    with servers(dataset, workers, out / "servers") as (url, api):
        # Warm-up (imports, first Redis connections, page cache): not recorded.
        run_step(url, api, 4, 5, dataset / "probes.csv", floor_ms, out / "warmup")
        for n in users:
            step = run_step(
                url, api, n, seconds, dataset / "probes.csv", floor_ms, out / f"{workers}w"
            )
            steps.append(step)
            print(
                f"  {workers} worker(s) {n:4d} users: {step.achieved_rps:6.1f} checks/s, "
                f"p50 {step.p50_ms:5.0f} p99 {step.p99_ms:5.0f} ms, "
                f"API {step.api_cores:.2f} cores, {step.api_cpu_ms_per_check:.1f} ms CPU/check, "
                f"machine {step.machine_busy:.0%} busy",
                flush=True,
            )
            if _saturated(steps):
                break
    return steps


def _saturated(steps: Sequence[Step]) -> bool:
    """Two steps in a row that add < 5 % throughput, or latency far past the floor."""
    if steps[-1].p50_ms > 4 * (steps[0].p50_ms or 1):
        return True
    if len(steps) < 3:
        return False
    a, b, c = (s.achieved_rps for s in steps[-3:])
    return b < a * 1.05 and c < b * 1.05


# --- 3. build time ------------------------------------------------------------------------------
def build_times(
    sizes: Sequence[int], profile: str, workers: int, out: Path
) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    key = out / "bench.key"
    if not key.exists():
        subprocess.run([str(VENV_BIN / "lookup-index"), "keygen", "--out", str(key)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    points: list[dict[str, Any]] = []
    for rows in sizes:
        export = out / f"export-{rows}.csv"
        if not export.exists():
            subprocess.run(
                [str(VENV_BIN / "lookup-index"), "generate", "--rows", str(rows), "--seed", "7",
                 "--out", str(export)], check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(
            [str(VENV_BIN / "lookup-index"), "build", "--input", str(export),
             "--key-file", str(key), "--out", str(out / f"index-{rows}.bin"), "--profile", profile,
             "--workers", str(workers), "--quiet"],
            check=True, capture_output=True, text=True, timeout=4 * 3600,
        )  # fmt: skip
        wall = time.monotonic() - started
        summary = dict(
            line.strip().split(": ", 1) for line in result.stdout.splitlines() if ": " in line
        )
        point = {
            "rows": rows,
            "keys_hashed": int(summary["keys_hashed"]),
            "seconds": float(summary["seconds"]),
            "wall_seconds": round(wall, 2),
            "file_size": int(summary["file_size"]),
            "workers": workers,
            "profile": profile,
        }
        points.append(point)
        print(
            f"  build {rows:>9,} rows ({profile}, {workers} workers): {point['seconds']:.1f} s",
            flush=True,
        )
        (out / f"index-{rows}.bin").unlink()
    return points


def _parse_rate(out: Path) -> float | None:
    """Rows/s of a TEST-profile build (hashing nearly free): the builder's serial ceiling."""
    points = build_times([200_000], "test", os.cpu_count() or 1, out)
    return points[0]["rows"] / points[0]["seconds"] if points else None


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def cached_builds(profile: str) -> list[dict[str, Any]]:
    """Builds ``run.sh`` made for its cache (e.g. the load test's 1M records): real
    measurements, but taken while the machine did other work (see build-conditions.txt)."""
    points: list[dict[str, Any]] = []
    for entry in sorted(
        (ROOT / "loadtests" / "results" / "cache").glob(f"rows-*-{profile}-seed-*")
    ):
        log, conditions = entry / "build.log", entry / "build-conditions.txt"
        if not (log.exists() and conditions.exists()):
            continue
        summary = dict(
            line.strip().split(": ", 1) for line in log.read_text().splitlines() if ": " in line
        )
        settings = dict(
            item.split("=", 1) for item in conditions.read_text().split() if "=" in item
        )
        points.append(
            {
                "rows": int(summary["rows_read"]),
                "keys_hashed": int(summary["keys_hashed"]),
                "seconds": float(summary["seconds"]),
                "workers": int(settings.get("build_workers", "0"))
                or int(settings.get("nproc", "0")),
                "profile": profile,
                "source": f"run.sh cache ({entry.name}), shared CPU",
            }
        )
    return points


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="index for the capacity curve")
    parser.add_argument("--profile", default="fast", choices=sorted(PROFILES))
    parser.add_argument("--workers", default="1,2", help="API worker counts to measure")
    parser.add_argument("--users", default="1,2,4,8,16,24,32,48,64,96,128,192,256")
    parser.add_argument("--step-seconds", type=int, default=20)
    parser.add_argument("--build-sizes", default="10000,25000,50000,100000")
    parser.add_argument("--build-profile", default="fast", choices=sorted(PROFILES))
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "bench")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--replot", type=Path, metavar="JSON", help="redraw plots and tables from a capacity.json"
    )
    args = parser.parse_args(argv)

    if args.replot:
        # Recompute the model too: a change to it never needs the measurements again.
        result = json.loads(args.replot.read_text())
        builds = result.get("builds", [])
        result["cached_builds"] = cached_builds(builds[0]["profile"]) if builds else []
        result["model"] = capacity_model(
            result["argon2_ms"],
            [Step(**step) for steps in result.get("capacity", {}).values() for step in steps],
            args.profile,
            builds,
            builds[0]["profile"] if builds else args.build_profile,
            result.get("parse_rows_per_s"),
        )
        make_plots(result, args.img)
        print(render_markdown(result))
        return 0

    from app.settings import Settings

    floor_ms = Settings().response_floor_ms
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"capacity-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "python": sys.version.split()[0],
        },
        "floor_ms": floor_ms,
    }
    print("Argon2id CPU per hash (one thread, best of 3):", flush=True)
    argon2 = {name: argon2_ms(name) for name in PROFILES}
    for name, ms in argon2.items():
        print(f"  {name:9s} {ms:8.3f} ms")
    result["argon2_ms"] = argon2

    curves: dict[str, list[Step]] = {}
    if not args.skip_capacity:
        subprocess.run(
            ["bash", str(ROOT / "loadtests" / "run.sh"), "--prepare-only", "--rows", str(args.rows),
             "--profile", args.profile], check=True,
        )  # fmt: skip
        dataset = (
            ROOT / "loadtests" / "results" / "cache" / f"rows-{args.rows}-{args.profile}-seed-2026"
        )
        for workers in _ints(args.workers):
            print(
                f"capacity curve, {workers} API worker(s), {args.rows:,} records, {args.profile}:"
            )
            curves[f"{workers} worker{'s' if workers > 1 else ''}"] = capacity_curve(
                dataset, workers, _ints(args.users), args.step_seconds, floor_ms, out
            )
        result["capacity"] = {label: [vars_of(s) for s in steps] for label, steps in curves.items()}

    builds: list[dict[str, Any]] = []
    parse_rate = None
    if not args.skip_build:
        print(f"build time vs records ({args.build_profile} profile):", flush=True)
        builds = build_times(
            _ints(args.build_sizes), args.build_profile, os.cpu_count() or 1, out / "build"
        )
        parse_rate = _parse_rate(out / "build")
        result["builds"] = builds
        result["parse_rows_per_s"] = parse_rate
        result["cached_builds"] = cached_builds(args.build_profile)

    all_steps = [s for steps in curves.values() for s in steps]
    result["model"] = capacity_model(
        argon2, all_steps, args.profile, builds, args.build_profile, parse_rate
    )
    result["machine"]["loadavg_after"] = os.getloadavg()
    make_plots(result, args.img)
    path = out / "capacity.json"
    path.write_text(json.dumps(result, indent=2))
    print(render_markdown(result))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
