"""Helpers for the rate-limit tests: one app, many client addresses; identities; the keyspace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import redis
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp
from stdnum.fr import nir as stdnum_nir

from app.main import create_app
from app.settings import Settings
from loadtests.harness import lifted_limits
from lookup_index import canonical_identity, normalise_nir
from lookup_index.generator import Probe

CHECK = "/v1/check"
#: Limits high enough never to interfere with the limit a test is about (every limit setting).
LIFTED: dict[str, str] = lifted_limits()


def check_body(probe: Probe) -> dict[str, str]:
    return {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name}


def valid_probes(probes: Sequence[Probe]) -> list[Probe]:
    """Well-formed identities sharing no identity bucket (NIR, or name and birth date)."""
    seen: set[object] = set()
    chosen = []
    for probe in probes:
        if probe.expected == "invalid":
            continue
        identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
        keys = {identity.nir, (identity.last_name, identity.birth_date)}
        if not keys & seen:
            seen |= keys
            chosen.append(probe)
    return chosen


def with_order_number(probe: Probe, order: int) -> Probe:
    """The same name and birth date with another valid NIR (its order digits changed)."""
    body = normalise_nir(probe.nir)
    new_body = body[:10] + f"{order:03d}"
    assert new_body != body
    return replace(probe, nir=new_body + stdnum_nir.calc_check_digits(new_body))


@dataclass
class InProcessApp:
    """One app (lifespan run once) reachable from any client address."""

    asgi: ASGIApp
    settings: Settings
    #: The app's ``state`` (its metrics, floor statistics...), for tests that read them.
    state: Any = None

    def client(self, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.asgi, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def check(
        self, address: str, json: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        async with self.client(address) as http:
            return await http.post(CHECK, json=json, headers=headers, **kw)

    async def statuses(self, requests: Iterable[tuple[str, Any]]) -> list[int]:
        """Send (address, body) pairs one after the other; return the statuses in order."""
        return [(await self.check(address, body)).status_code for address, body in requests]

    async def burst(self, requests: Iterable[tuple[str, Any]]) -> list[int]:
        """Send (address, body) pairs all at once."""
        answers = await asyncio.gather(*(self.check(a, b) for a, b in requests))
        return [answer.status_code for answer in answers]


@contextlib.asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[InProcessApp]:
    app = create_app(settings)
    # a generous start-up wait: under mutmut's instrumentation on a loaded machine, 5 s is short
    async with LifespanManager(app, startup_timeout=30) as manager:
        yield InProcessApp(manager.app, settings, app.state)


def flush(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()


def keyspace(url: str) -> Iterator[tuple[str, list[str]]]:
    """Every key of the store with its values, as text (SCAN, so nothing is left out)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        for raw_key in client.scan_iter(count=1000):
            kind = client.type(raw_key)
            if kind == b"list":
                values = client.lrange(raw_key, 0, -1)
            elif kind == b"string":
                values = [client.get(raw_key)]
            elif kind == b"zset":
                values = [
                    m for pair in client.zrange(raw_key, 0, -1, withscores=True) for m in pair
                ]
            elif kind == b"hash":
                values = [v for pair in client.hgetall(raw_key).items() for v in pair]
            else:
                values = list(client.smembers(raw_key)) if kind == b"set" else [kind]
            text = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
            yield raw_key.decode("latin-1"), text
    finally:
        client.close()
