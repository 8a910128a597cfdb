"""The cheap refusal: a client already refused by its unproven network tiers is answered 429
before FastAPI routes, parses or counts anything, as long as its body cannot carry a
proof of work.

Why: a refusal must cost the server a small fraction of an admitted check (the target
is 2%, docs/BENCHMARKS.md), or refusals become the cheapest way to load it. Through
FastAPI a refused check cost ~4 ms of CPU (routing, dependency resolution, a worker
thread, parsing, a store round trip) against ~50 ms for an admitted one.

Exact, not a guess: when the admission table refuses an unproven request at its
network stage, ``RateLimits`` notes the client address with the moment the full
window next has room (the moving window's reset time, from the store). Until then the
store would refuse it too: a moving window only frees up with time, and other
processes or hosts can only fill it further. The note is per process and per address
(the exact peer, never stored anywhere but this memory); once it lapses, the next
request takes the full path again and, if still refused, is noted again.

A body that may hold an ``"altcha"`` key (the bytes ``altcha``, or any JSON escape that
could spell them) takes the full path: its proof of work may make it proven, and the
proven class has its own network allowance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission.buckets import Admission
from app.client_address import IPAddress, IPNetwork, client_ip
from app.errors import PublicError, RateLimited, render_error
from app.padded_json import PaddedJSON
from app.request_note import note_refusal
from app.routes.paths import CHECK_PATH

#: More noted addresses than this and expired ones are dropped; still more, none is added.
MAX_NOTED = 65_536


def may_carry_proof(body: bytes) -> bool:
    """False only when no JSON decoder could read an ``altcha`` key in ``body``."""
    return b"altcha" in body or b"\\" in body


class RefusedNetworks:
    """Addresses refused by the unproven network tiers, each until its window has room."""

    def __init__(self) -> None:
        # address -> (until, the refusing bucket's name, for the metrics and the log line)
        self._until: dict[IPAddress, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def note(self, address: IPAddress | None, until: float, bucket: str) -> None:
        if address is None:
            return
        with self._lock:
            if len(self._until) >= MAX_NOTED:
                now = time.time()
                self._until = {a: n for a, n in self._until.items() if n[0] > now}
                if len(self._until) >= MAX_NOTED:
                    return
            noted = self._until.get(address)
            if noted is None or until >= noted[0]:
                self._until[address] = (until, bucket)

    def refused(self, address: IPAddress | None) -> str | None:
        """The bucket that refused ``address`` while its window is still full, else None."""
        if address is None:
            return None
        # A lapsed note is left in place: note() drops lapsed ones when the map is full, so
        # memory stays bounded, and a read takes no lock (note() swaps the map whole).
        noted = self._until.get(address)
        if noted is None or noted[0] <= time.time():
            return None
        return noted[1]


class NetworkGate:
    """ASGI middleware, inside the body cap (the body is already buffered, in one message)
    and inside the floor, the uniform headers and the catch-all: its 429 is the route's."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        refusals: RefusedNetworks,
        renderer: PaddedJSON,
        trusted_proxies: Sequence[IPNetwork],
    ) -> None:
        self.app = app
        self.refusals = refusals
        self.renderer = renderer
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bucket = (
            self.refusals.refused(client_ip(scope, self.trusted_proxies))
            if scope["type"] == "http" and scope["path"] == CHECK_PATH and scope["method"] == "POST"
            else None
        )
        if bucket is None:
            await self.app(scope, receive, send)
            return
        try:
            message = await receive()
        except PublicError as refusal:  # an oversize or late body: the route counts it as junk
            await self.app(scope, _raising(refusal), send)
            return
        if message["type"] == "http.request" and not may_carry_proof(message.get("body", b"")):
            note_refusal(bucket, Admission.UNPROVEN.value)
            await render_error(self.renderer, RateLimited)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return message
            return await receive()

        await self.app(scope, replay, send)


def _raising(refusal: PublicError) -> Receive:
    async def receive() -> Message:
        raise refusal

    return receive
