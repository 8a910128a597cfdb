"""Which answer a valid query gets, screen or private, and the outbox write of private ones.

``screen``: the outcome on screen (the default). ``private``: every valid query gets the
one "submitted" answer and writes one sealed outbox entry. ``auto``: screen while calm,
private for everyone while the admission's attack signal is raised (app/admission/cost.py);
each switch is logged and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from app.delivery.outbox import Outbox
from app.delivery.outbox_entry import EntrySealer, Kind, OutboxEntry

logger = logging.getLogger("app.delivery")

DeliveryName = Literal["screen", "private", "auto"]


class PrivateDelivery:
    def __init__(
        self,
        mode: DeliveryName,
        sealer: EntrySealer,
        outbox: Outbox,
        attack_signal: Callable[[], bool],
    ) -> None:
        self.mode = mode
        self._sealer = sealer
        self.outbox = outbox
        self._attack_signal = attack_signal
        self._lock = threading.Lock()
        self._private = mode == "private"
        #: Switches between screen and private since start-up (auto only).
        self.switches = 0
        #: Entries written since start-up, in this process.
        self.entries_written = 0

    def private_now(self) -> bool:
        """Answer this query privately? (auto: follows the attack signal, logging switches)."""
        if self.mode != "auto":
            return self.mode == "private"
        private = self._attack_signal()
        with self._lock:
            if private != self._private:
                self._private = private
                self.switches += 1
                logger.warning(
                    "delivery switched to %s (attack signal %s)",
                    "private" if private else "screen",
                    "raised" if private else "cleared",
                )
        return private

    def submit(self, found: bool, mask: int, sealed: bytes, binding: bytes, lang: str) -> None:
        """Write the query's one entry; raises OutboxUnavailable (the uniform 503)."""
        deliver = found and bool(sealed)
        entry = OutboxEntry(
            kind=Kind.DELIVER if deliver else Kind.NOTHING,
            lang=lang,
            categories=mask if deliver else 0,
            checked_at=int(time.time()),
            binding=binding,
            sealed_contact=sealed,
        )
        self.outbox.add(self._sealer.seal(entry))
        with self._lock:
            self.entries_written += 1

    def close(self) -> None:
        self.outbox.close()
