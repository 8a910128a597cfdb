"""Benchmarks of the edge: header parsing (h11 vs httptools) and Redis bytes per client.

1. **Header parse cost.** The same app served by uvicorn with httptools (uvicorn's
   default), with h11 and its head cap, and with ``selfcheck serve``'s
   ``app/server_protocol.py`` (httptools with a head deadline and a 16 KiB head
   cap), side by side: server CPU per
   request for ``GET /healthz`` with browser-like headers (about 1 KiB) over
   keep-alive, in alternating batches; then one header bomb per parser (an
   8 MiB header): how long until the server lets go and the CPU it spent.
2. **Redis bytes per client per day.** The app in process on a fresh
   redis-server with the production limits (global ceiling lifted): ``--clients``
   addresses each check once (distinct identities), then as many send 50 checks
   in a row (5 admitted by the per-minute limit, the rest refused, which store
   nothing); ``used_memory`` before and after, divided by the clients. Every key
   lives at most its longest window (24 h), so this is the footprint of one
   client-day.

Usage::

    python -m loadtests.bench_edge               # a few minutes
    python -m loadtests.bench_edge --clients 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import redis
from asgi_lifespan import LifespanManager

from app.cli import MAX_HEADER_BYTES
from app.main import create_app
from app.settings import Settings
from loadtests.harness import (
    build_synthetic_index,
    free_port,
    lifted_limits_env,
    process_tree_cpu_seconds,
    redis_server,
)
from lookup_index.generator import read_probes
from lookup_index.profiles import TEST

PARSERS = {
    "httptools (uvicorn's default)": ["--http", "httptools"],
    "h11 with its 16 KiB cap": [
        "--http", "h11", "--h11-max-incomplete-event-size", str(MAX_HEADER_BYTES),
    ],
    "httptools + head deadline and 16 KiB cap (selfcheck serve)": [
        "--http", "app.server_protocol:BoundedHttpToolsProtocol",
        "--h11-max-incomplete-event-size", str(MAX_HEADER_BYTES),
    ],
}  # fmt: skip
BROWSER_HEADERS = (
    "Host: selfcheck.example.fr\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Language: fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Referer: https://cabinet-exemple.fr/patients/verifier-mon-identite\r\n"
    "Origin: https://selfcheck.example.fr\r\n"
    "Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-origin\r\n"
    "DNT: 1\r\nPriority: u=0\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
    f"Cookie: consent={'a' * 400}\r\n"
)


@contextlib.contextmanager
def uvicorn_process(
    index: Path, key: Path, parser: list[str]
) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCHECK_")}
    env |= lifted_limits_env() | {
        "SELFCHECK_INDEX_PATH": str(index),
        "SELFCHECK_KEY_FILE": str(key.resolve()),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",  # its index uses the cheap `test` profile
        "SELFCHECK_LOG_LEVEL": "warning",
    }
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
        *parser,
    ]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.1)
        yield port, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def keep_alive_batch(port: int, requests: int) -> None:
    raw = f"GET /healthz HTTP/1.1\r\n{BROWSER_HEADERS}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(requests):
            sock.sendall(raw)
            data = b""
            while not data.endswith(b'"alive"}'):
                data += sock.recv(65536)


def header_bomb(port: int, megabytes: int) -> tuple[float, bool]:
    """Seconds until the server answers or closes; whether it read the whole bomb."""
    bomb = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bomb: " + b"a" * (megabytes << 20) + b"\r\n\r\n"
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(bomb)
            read_whole = True
        except OSError:
            read_whole = False
        with contextlib.suppress(OSError):
            sock.recv(65536)
    return time.perf_counter() - started, read_whole


def header_parse(index: Path, key: Path, batches: int, per_batch: int, bomb_mb: int) -> None:
    cpu = {name: 0.0 for name in PARSERS}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(uvicorn_process(index, key, argv))
                   for name, argv in PARSERS.items()}  # fmt: skip
        for port, _ in servers.values():
            keep_alive_batch(port, 50)  # warm up
        for _ in range(batches):  # alternate, so machine load hits both alike
            for name, (port, process) in servers.items():
                before = process_tree_cpu_seconds(process)
                keep_alive_batch(port, per_batch)
                cpu[name] += process_tree_cpu_seconds(process) - before
        bombs = {}
        for name, (port, process) in servers.items():
            before = process_tree_cpu_seconds(process)
            seconds, whole = header_bomb(port, bomb_mb)
            time.sleep(0.5)  # let the server finish with it
            bombs[name] = (seconds, whole, process_tree_cpu_seconds(process) - before)
    total = batches * per_batch
    print(f"\n### Header parsing: {total} keep-alive GET /healthz, ~1 KiB of headers each\n")
    print(
        f"| parser | server CPU / request | {bomb_mb} MiB header bomb: let go after "
        "| CPU spent | read whole |"
    )
    print("|---|---|---|---|---|")
    for name in PARSERS:
        seconds, whole, spent = bombs[name]
        print(f"| {name} | {cpu[name] / total * 1e6:.0f} µs | {seconds:.2f} s | {spent:.2f} s | "
              f"{'yes' if whole else 'no'} |")  # fmt: skip
    names = list(PARSERS)
    for name in names[1:]:
        print(f"\n{name} / {names[0]}, CPU per request: {cpu[name] / cpu[names[0]]:.2f}")


async def redis_bytes_per_client(
    index: Path, key: Path, probes_file: Path, clients: int, port: int
) -> None:
    probes = [p for p in read_probes(probes_file) if p.expected != "invalid"]
    store = redis.Redis(port=port)
    settings = Settings(
        index_path=index, key_file=key, response_floor_ms=0,
        rate_limit_storage=f"redis://127.0.0.1:{port}/0", global_limit="1000000/second",
    )  # fmt: skip
    rows = []
    used_probes = 0
    async with LifespanManager(create_app(settings)) as manager:
        for checks in (1, 50):
            store.flushall()
            before = int(store.info("memory")["used_memory"])
            for number in range(clients):
                address = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
                transport = httpx.ASGITransport(app=manager.app, client=(address, 1))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    for _ in range(checks):
                        probe = probes[used_probes % len(probes)]
                        used_probes += 1
                        body = {"nir": probe.nir, "birth_date": probe.birth_date,
                                "last_name": probe.last_name}  # fmt: skip
                        await client.post("/v1/check", json=body)
            used = int(store.info("memory")["used_memory"]) - before
            rows.append((checks, used / clients, store.dbsize() / clients))
    print(f"\n### Redis memory: {clients} clients, production limits, moving windows\n")
    print("| checks sent per client | bytes per client | keys per client |")
    print("|---|---|---|")
    for checks, per_client, keys in rows:
        print(f"| {checks} | {per_client:,.0f} | {keys:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--per-batch", type=int, default=500)
    parser.add_argument("--bomb-mb", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        # One probe per row: enough distinct identities for every admitted check.
        rows = 3 * 5 * args.clients
        made = build_synthetic_index(Path(directory), rows=rows, seed=31, profile=TEST, probes=rows)
        index, key, probes = made.index, made.key, made.probes_file
        header_parse(index, key, args.batches, args.per_batch, args.bomb_mb)
        with redis_server(Path(directory) / "redis") as store:
            asyncio.run(redis_bytes_per_client(index, key, probes, args.clients, store.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
