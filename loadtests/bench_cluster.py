"""Build throughput on a Dask cluster vs a local build, side by side in one run.

    .venv/bin/python -m loadtests.bench_cluster [--rows 600] [--profile standard]

Starts a real TLS cluster on loopback (`dask scheduler` + 2 `dask worker`
processes, one thread each, as the tests do), then on one generated export:

1. the single-core Argon2id rate: ``stretch()`` in a loop, CPU time of this thread;
2. a local build with a 2-process pool (wall time);
3. the same build on the cluster through the CLI (``--like`` the local index, so the
   files must be byte-identical, build id and time aside), with the workers' own
   CPU time read from /proc before and after, and the client's CPU time.

Efficiency = keys per worker CPU-second / single-core Argon2 rate: the share of
the workers' CPU that is Argon2, the rest being validation, pickling, TLS and
scheduling. On 2 cores the client and the scheduler share the machine with the
workers, so the wall-clock speed-up understates a real cluster; the per-worker
CPU figure does not. Prints a markdown block for docs/BENCHMARKS.md, including
the 15M-record projection for N machines x C cores.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lookup_index.builder import BuildOptions, build_index
from lookup_index.generator import generate
from lookup_index.keyed_hash import stretch
from lookup_index.profiles import PROFILES, TEST, Argon2Profile
from lookup_index.reader import IndexReader
from tests.lookup_index.helpers import masked_index
from tests.support.dask_cluster import DaskCluster

RECORDS = 15_000_000
MACHINES = (1, 2, 4, 8, 16)
CORES = (8, 16, 32)


def argon2_ms(profile: Argon2Profile, count: int) -> float:
    salt = secrets.token_bytes(16)
    started = time.thread_time()
    for i in range(count):
        stretch(b"v1|1850575123045|1985-03-02|BENCH%d" % i, salt, profile)
    return (time.thread_time() - started) * 1000 / count


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cluster_build(
    cluster: DaskCluster, export: Path, key: Path, out: Path, like: Path, chunk_rows: int
) -> tuple[float, float, float]:
    """(wall s, workers' CPU s, client CPU s) of one CLI build on the cluster."""
    pids = cluster.worker_pids()
    before_workers, before_client = cpu_seconds(pids), children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable, "-m", "lookup_index.cli", "build", "--input", str(export),
            "--key-file", str(key), "--out", str(out), "--like", str(like), "--quiet",
            "--scheduler", cluster.address, *cluster.tls, "--chunk-rows", str(chunk_rows),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - started
    return wall, cpu_seconds(pids) - before_workers, children_cpu() - before_client


def local_build(export: Path, out: Path, key: Path, profile: Argon2Profile) -> tuple[float, int]:
    started = time.perf_counter()
    summary = build_index(BuildOptions(export, out, key.read_bytes(), profile, workers=2))
    return time.perf_counter() - started, summary.keys_hashed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--chunk-rows", type=int, default=32)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        directory = Path(tmp)
        export, key = directory / "export.csv", directory / "build.key"
        generate(args.rows, 3, export, None)
        key.write_bytes(secrets.token_bytes(32))
        # The client's own cost per key: two builds whose Argon2 is negligible (test
        # profile), small and large, so the CLI's start-up cancels out.
        small, large = directory / "small.csv", directory / "large.csv"
        generate(200, 4, small, None)
        generate(20_000, 5, large, None)
        ms_before = argon2_ms(profile, 40)
        local = directory / "local.bin"
        local_wall, keys = local_build(export, local, key, profile)
        (directory / "cluster").mkdir()
        cluster = DaskCluster(directory / "cluster", spy=False)
        try:
            cluster.start(workers=2)
            pids = cluster.worker_pids()
            idle_before = cpu_seconds(pids)
            time.sleep(10)
            idle_per_s = (cpu_seconds(pids) - idle_before) / 10
            out = directory / "cluster.bin"
            wall, worker_cpu, _ = cluster_build(cluster, export, key, out, local, args.chunk_rows)
            ms_after = argon2_ms(profile, 40)
            client = {}
            for name, source in (("small", small), ("large", large)):
                like = directory / f"{name}-like.bin"
                _, rows_keys = local_build(source, like, key, TEST)
                _, _, cpu = cluster_build(
                    cluster, source, key, directory / f"{name}.bin", like, 256
                )
                client[name] = (rows_keys, cpu)
        finally:
            cluster.stop()
        identical = masked_index(out) == masked_index(local)
        with IndexReader.open(local) as reader:
            distinct = reader.header.records

    per_key_ms = (ms_before + ms_after) / 2
    other_ms = {n: argon2_ms(p, 20) for n, p in PROFILES.items() if n in {"fast", "standard"}}
    other_ms[args.profile] = per_key_ms
    rate_single = 1000 / per_key_ms
    rate_worker = keys / worker_cpu
    efficiency = rate_worker / rate_single
    single_core_wall = keys * per_key_ms / 1000
    client_ms_per_key = (
        (client["large"][1] - client["small"][1]) * 1000 / (client["large"][0] - client["small"][0])
    )
    load = psutil.getloadavg()
    print(f"## Cluster build ({args.profile}, {args.rows} rows, {keys} keys)\n")
    print(f"load average at the end: {load[0]:.2f}; byte-identical to local: {identical}\n")
    print("| | value |\n|---|---:|")
    rows = [
        ("single-core Argon2id (before / after)", f"{ms_before:.1f} / {ms_after:.1f} ms/key"),
        ("single-core rate (mean)", f"{rate_single:.1f} keys/CPU-s"),
        ("cluster: keys per worker CPU-second", f"{rate_worker:.1f}"),
        ("**efficiency** (per worker CPU-s / single core)", f"**{efficiency:.1%}**"),
        ("idle worker CPU (heartbeats; before the build)", f"{idle_per_s * 1000:.0f} ms/s"),
        ("client CPU per key (read, MAC, seal, merge, write)", f"{client_ms_per_key:.3f} ms"),
        ("single core, projected wall", f"{single_core_wall:.1f} s"),
        ("local build, 2 processes, wall", _wall(local_wall, single_core_wall)),
        ("cluster build, 2 workers, wall", _wall(wall, single_core_wall)),
    ]
    for label, value in rows:
        print(f"| {label} | {value} |")
    print()
    total_keys = RECORDS * keys / distinct
    serial = total_keys * client_ms_per_key / 1000
    print(f"### 15M records ({total_keys / 1e6:.1f} M keys), efficiency {efficiency:.0%}\n")
    print(f"client bound (one process reads and seals): {_duration(serial)}\n")
    print("| profile | machines | " + " | ".join(f"{c} cores each" for c in CORES) + " |")
    print("|---|---:|" + "---:|" * len(CORES))
    for name, ms in sorted(other_ms.items()):
        for machines in MACHINES:
            cells = []
            for cores in CORES:
                seconds = total_keys * ms / 1000 / (machines * cores * efficiency)
                cells.append(_duration(max(seconds, serial)))
            print(f"| {name} | {machines} | " + " | ".join(cells) + " |")
    return 0 if identical else 1


def _wall(seconds: float, single_core: float) -> str:
    return f"{seconds:.1f} s ({single_core / seconds:.2f}x single core)"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


if __name__ == "__main__":
    sys.exit(main())
