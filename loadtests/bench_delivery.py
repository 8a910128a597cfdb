"""Benchmark of private delivery, side by side in one run (figures in docs/BENCHMARKS.md):

1. server CPU per check, private mode against screen mode: two real ``selfcheck serve``
   processes on the same index (contacts sealed, ``--profile``, default ``standard``),
   the private one writing to a real Redis outbox; interleaved rounds of the same
   hit/miss mix, CPU time of each server process (psutil) divided by its checks;
2. outbox bytes per entry: Redis ``MEMORY USAGE`` of the stream and the AOF growth,
   divided by the entries written;
3. send-worker throughput: entries with distinct synthetic contacts, drained by one
   worker to a real aiosmtpd process (no sending-rate cap), messages per second.

Usage::

    python -m loadtests.bench_delivery                    # ~2 minutes on 2 cores
    python -m loadtests.bench_delivery --rounds 4 --checks 40 --messages 200 --profile fast
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from app.delivery.outbox_entry import EntrySealer, Kind, OutboxEntry
from app.delivery.send_worker import open_worker
from app.settings import Settings
from loadtests.harness import api_server, lifted_limits_env
from lookup_index.pepper import load_pepper
from lookup_index.profiles import PROFILES
from lookup_index.sealed_contact import Contact, seal_contact
from lookup_index.sender_keys import load_sender_private_key
from tests.support.delivery import STREAM, acl_redis, make_contact_dataset, smtp_sink


def _bodies(dataset: object, count: int) -> list[dict[str, str]]:
    probes = [p for p, _ in dataset.with_email] + dataset.without_contact + dataset.not_found  # type: ignore[attr-defined]
    chosen = [probes[i % len(probes)] for i in range(count)]
    return [{"nir": p.nir, "birth_date": p.birth_date, "last_name": p.last_name} for p in chosen]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def server_cpu(dataset: object, redis_server: object, work: Path, args: argparse.Namespace) -> None:
    common = {
        **lifted_limits_env(),
        "SELFCHECK_INDEX_PATH": str(dataset.index),  # type: ignore[attr-defined]
        "SELFCHECK_KEY_FILE": str(dataset.key),  # type: ignore[attr-defined]
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_POW": "off",
    }
    private = {
        **common,
        "SELFCHECK_DELIVERY": "private",
        "SELFCHECK_OUTBOX_URL": redis_server.url("selfcheck-api"),  # type: ignore[attr-defined]
        "SELFCHECK_OUTBOX_PASSWORD_FILE": str(redis_server.password_file("selfcheck-api")),  # type: ignore[attr-defined]
        "SELFCHECK_OUTBOX_KEY_FILE": str(dataset.outbox_key),  # type: ignore[attr-defined]
    }
    bodies = _bodies(dataset, args.checks)
    admin = redis_server.admin()  # type: ignore[attr-defined]
    aof_dir = redis_server.directory  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        screen_api = stack.enter_context(api_server(common, work / "screen.log"))
        private_api = stack.enter_context(api_server(private, work / "private.log"))
        servers = {"screen": screen_api, "private": private_api}
        cpu = dict.fromkeys(servers, 0.0)
        checks = dict.fromkeys(servers, 0)
        with httpx.Client(timeout=30) as http:
            for server in servers.values():  # warm-up: imports, first connections
                http.post(server.url + "/v1/check", json=bodies[0])
            admin.delete(STREAM)
            aof_before = sum(p.stat().st_size for p in aof_dir.rglob("*.aof"))
            for _ in range(args.rounds):
                for name, server in servers.items():
                    process = psutil.Process(server.process.pid)
                    before = _cpu(process)
                    for body in bodies:
                        answer = http.post(server.url + "/v1/check", json=body)
                        assert answer.status_code == 200, answer.status_code
                    cpu[name] += _cpu(process) - before
                    checks[name] += len(bodies)
    entries = int(admin.xlen(STREAM))
    memory = int(admin.memory_usage(STREAM) or 0)
    aof_after = sum(p.stat().st_size for p in aof_dir.rglob("*.aof"))
    admin.close()
    per = {name: cpu[name] / checks[name] * 1000 for name in cpu}
    print(f"profile {args.profile}, {checks['screen']} checks per mode in {args.rounds} rounds")
    print(f"  server CPU per check, screen:  {per['screen']:.2f} ms")
    print(f"  server CPU per check, private: {per['private']:.2f} ms")
    print(f"  private / screen:              {per['private'] / per['screen']:.3f}x")
    print(f"  outbox entries written: {entries} (one per private check: {checks['private']})")
    print(f"  outbox bytes per entry: {memory / entries:.0f} (Redis MEMORY USAGE), "
          f"{(aof_after - aof_before) / entries:.0f} (AOF growth); payload 256")  # fmt: skip


async def _drain(worker: object, total: int) -> float:
    await worker.ensure_group()  # type: ignore[attr-defined]
    started = time.perf_counter()
    while worker.stats.sent < total:  # type: ignore[attr-defined]
        await worker.run_once()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    await worker.email.close()  # type: ignore[attr-defined]
    await worker.client.aclose()  # type: ignore[attr-defined]
    return elapsed


def sender_throughput(dataset: object, redis_server: object, work: Path, count: int) -> None:
    admin = redis_server.admin()  # type: ignore[attr-defined]
    for key in admin.keys(f"{STREAM}*"):
        admin.delete(key)
    sealer = EntrySealer(load_pepper(dataset.outbox_key), STREAM)  # type: ignore[attr-defined]
    public = load_sender_private_key(dataset.sender_key).public_key()  # type: ignore[attr-defined]
    for n in range(count):
        binding = secrets.token_bytes(32)
        sealed = seal_contact(Contact(f"bench-{n}@example.org"), public, binding)
        entry = OutboxEntry(Kind.DELIVER, "fr", 7, int(time.time()), binding, sealed)
        admin.xadd(STREAM, {b"e": sealer.seal(entry)})
    admin.close()
    with smtp_sink(work / "smtp") as smtp:
        settings = Settings(
            outbox_url=redis_server.url("selfcheck-sender"),  # type: ignore[attr-defined]
            outbox_password_file=redis_server.password_file("selfcheck-sender"),  # type: ignore[attr-defined]
            outbox_key_file=dataset.outbox_key,  # type: ignore[attr-defined]
            sender_key_file=dataset.sender_key,  # type: ignore[attr-defined]
            smtp_url=smtp.url,
            mail_from="bench@example.org",
            send_rate_per_s=10_000,
        )
        worker = open_worker(settings)
        process = psutil.Process(os.getpid())
        before = _cpu(process)
        elapsed = asyncio.run(_drain(worker, count))
        cpu = _cpu(process) - before
        received = len(smtp.messages())
    print(f"  send-worker: {count} messages in {elapsed:.2f} s = {count / elapsed:.0f} msg/s "
          f"(one worker, one SMTP connection kept open; worker CPU {cpu / count * 1000:.2f} "
          f"ms/msg); aiosmtpd recorded {received}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--checks", type=int, default=60, help="checks per mode per round")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--sender-only", action="store_true", help="only the worker's part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as name:
        work = Path(name)
        dataset = make_contact_dataset(work / "data", profile=PROFILES[args.profile])
        with acl_redis(work / "redis", aof=True) as redis_server:
            if not args.sender_only:
                server_cpu(dataset, redis_server, work, args)
            sender_throughput(dataset, redis_server, work, args.messages)


if __name__ == "__main__":
    main()
