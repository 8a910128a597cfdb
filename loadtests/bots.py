"""Botnet machines on loopback: each bot is a source address of its own in 127.0.0.0/8.

On Linux the whole of 127.0.0.0/8 is loopback, so a client socket can bind any
127.a.b.c as its source address and the API sees that address as the socket's peer:
no ``X-Forwarded-For`` here (the load test trusts it from 127.0.0.1 only, which no bot
ever uses). Bot ``n`` gets ``127.(1 + n // 256).(n % 256).1``: every bot in an IPv4
/24 of its own, so the per-address and per-/24 limits count each bot apart, as they
would for machines of a residential proxy pool. 127.0.0.0/16 (the patients' proxy,
127.0.0.1) is never used, and the shared-address patients sit apart in 127.255.0.0/16.

A bot either sends checks without proof of work (the unproven class), or fetches a
challenge from its own address and solves it with the ``altcha`` package's Python
solver (argon2-cffi: the real CPU an attacker pays) before checking.

No Locust import: pytest drives these same functions against a real server; the Locust
scenarios (``scenarios/botnet.py``, ``scenarios/shared_address.py``) wrap them. Under
Locust, ``http.client`` runs on gevent's patched sockets.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import altcha

from app.routes.paths import CHALLENGE_PATH, CHECK_PATH

#: Bots live in 127.1.0.0 - 127.254.255.255: 254 * 256 addresses, one /24 each.
MAX_BOTS = 254 * 256
#: Where the shared-address patients come from (one address, several patients).
SHARED_ADDRESS = "127.255.0.1"


def bot_address(n: int) -> str:
    """The source address of bot ``n`` (0 <= n < MAX_BOTS), alone in its /24."""
    if not 0 <= n < MAX_BOTS:
        raise ValueError(f"bot number {n} outside [0, {MAX_BOTS})")
    return f"127.{1 + n // 256}.{n % 256}.1"


def is_bot_address(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    return parsed in ipaddress.ip_network("127.0.0.0/8") and 1 <= parsed.packed[1] <= 254


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content: bytes
    #: From the request's first byte to the answer's last, milliseconds.
    elapsed_ms: float


class LoopbackClient:
    """Plain HTTP/1.1 from a chosen source address, one connection per request: each
    request is another machine (a bot keeps no connection to share)."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"need an http:// URL, got {base_url!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.timeout_s = timeout_s

    def request(
        self, method: str, path: str, source: str, body: dict[str, Any] | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout_s, source_address=(source, 0)
        )
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        started = time.perf_counter()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            content = response.read()
            status = response.status
        finally:
            connection.close()
        return Reply(status, content, (time.perf_counter() - started) * 1000)

    def check(self, source: str, body: dict[str, Any]) -> Reply:
        return self.request("POST", CHECK_PATH, source, body)

    def challenge(self, source: str) -> Reply:
        return self.request("GET", CHALLENGE_PATH, source)


def solve_challenge(challenge: dict[str, Any], timeout_s: float = 120.0) -> tuple[str, float]:
    """Solve with the Python solver (the attacker's CPU); the payload and CPU seconds spent."""
    parsed = altcha.Challenge.from_dict(challenge)
    started = time.thread_time()
    solution = altcha.solve_challenge(parsed, timeout=timeout_s)
    spent = time.thread_time() - started
    if solution is None:
        raise TimeoutError(f"no solution within {timeout_s} s")
    return altcha.Payload(parsed, solution).to_base64(), spent
