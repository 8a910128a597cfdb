"""Botnet: a list replayer renting thousands of machines (``LOADTEST_BOTNET_ADDRESSES``,
default 2,000), each a loopback source address of its own (``loadtests/bots.py``): the
API sees each bot as the socket's peer, in an IPv4 /24 of its own.

- **Unproven bots** send the leaked export's identities without proof of work, as fast
  as answers come back, each request from the next address of the botnet. Per address
  they meet the unproven network limit; together, the unproven class's global ceiling
  (``SELFCHECK_GLOBAL_LIMIT``), which is what bounds them: their admitted checks must
  never exceed it, and patients (the proven class) must not notice them.
- **Solving bots** fetch a challenge from their address and solve it with the Python
  solver (argon2-cffi: real CPU, counted in the ledger), then check. They solve in one
  OS thread beside gevent (argon2-cffi releases the GIL) and pace themselves to
  ``LOADTEST_BOTNET_SOLVE_SHARE`` of one core, so on the shared cores the run still
  measures admission, not the attacker's CPU crowding the API out.

A 429 (and a 422 for a malformed row of the export) is the defence working; a 5xx, or an
answer of the wrong size, is a failure.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from gevent.threadpool import ThreadPool
from locust import User, constant, task

from loadtests.bots import LoopbackClient, Reply, bot_address, solve_challenge
from loadtests.config import load_config
from loadtests.ledger import BOTNET_SOLVING, BOTNET_UNPROVEN, WHOLE_CLASS
from loadtests.scenarios.common import cycle_shuffled, leaked_identities, ledger

UNPROVEN_CHECK = "botnet: POST /v1/check (no proof of work)"
SOLVING_CHALLENGE = "botnet: GET /v1/challenge"
SOLVING_CHECK = "botnet: POST /v1/check (solved)"


class _Addresses:
    """Bot numbers handed out in turn over the whole botnet, shared by every bot user: each
    address is used once before any is used again."""

    def __init__(self, size: int) -> None:
        self._numbers = itertools.cycle(range(size))
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return bot_address(next(self._numbers))


@cache
def botnet() -> _Addresses:
    return _Addresses(load_config().botnet_addresses)


@cache
def solver() -> ThreadPool:
    """One OS thread: the solving bots together use at most one core, paced below that."""
    return ThreadPool(1)


class _Bot(User):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        config = load_config()
        self.http = LoopbackClient(self.host or config.host)
        self.identities: Iterator[dict[str, str]] = cycle_shuffled(
            leaked_identities(config.leaked_list), config.seed + id(self) % 997
        )
        self.size = config.service.response_size

    def _report(self, method: str, name: str, reply: Reply | None, error: str | None) -> None:
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=reply.elapsed_ms if reply else 0.0,
            response_length=len(reply.content) if reply else 0,
            exception=RuntimeError(error) if error else None,
            context={},
        )

    def _check(self, scenario: str, name: str, address: str, body: dict[str, Any]) -> int:
        ledger().source(scenario, address)
        sent = time.time()
        try:
            reply = self.http.check(address, body)
        except OSError as exc:
            ledger().attack(
                scenario, WHOLE_CLASS, False, f"unexpected ({type(exc).__name__})", sent
            )
            self._report("POST", name, None, type(exc).__name__)
            return 0
        status = reply.status
        if len(reply.content) != self.size:
            outcome, error = f"unexpected (body of {len(reply.content)} bytes)", "wrong size"
        elif status == 200:
            outcome, error = "admitted (200)", None
        elif status == 429:
            outcome, error = "refused (429)", None
        elif status == 422:
            outcome, error = "junk (422)", None
        else:
            outcome, error = f"unexpected (HTTP {status})", f"HTTP {status}"
        ledger().attack(scenario, WHOLE_CLASS, status == 200 and error is None, outcome, sent)
        self._report("POST", name, reply, error)
        return status


class BotnetUnprovenBot(_Bot):
    @task
    def replay(self) -> None:
        self._check(BOTNET_UNPROVEN, UNPROVEN_CHECK, botnet().next(), next(self.identities))


class BotnetSolvingBot(_Bot):
    @task
    def solve_and_replay(self) -> None:
        address = botnet().next()
        ledger().source(BOTNET_SOLVING, address)
        try:
            reply = self.http.challenge(address)
        except OSError as exc:
            self._report("GET", SOLVING_CHALLENGE, None, type(exc).__name__)
            return
        if reply.status != 200:
            # 429: this address asked too often; 503: the pool is empty. Both the defence.
            ledger().attack(
                BOTNET_SOLVING, WHOLE_CLASS, False, f"no challenge ({reply.status})", time.time()
            )
            self._report("GET", SOLVING_CHALLENGE, reply, None)
            time.sleep(0.25)
            return
        self._report("GET", SOLVING_CHALLENGE, reply, None)
        payload, cpu_s = solver().apply(solve_challenge, (json.loads(reply.content),))
        ledger().solved(BOTNET_SOLVING, cpu_s)
        self._check(
            BOTNET_SOLVING, SOLVING_CHECK, address, {**next(self.identities), "altcha": payload}
        )
        # Pace the CPU: after c seconds of solving, rest c * (1/share - 1).
        share = load_config().botnet_solve_share
        time.sleep(cpu_s * (1 / share - 1))
