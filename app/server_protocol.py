"""uvicorn's h11 protocol with a deadline on every request head.

uvicorn closes a keep-alive connection only after it has answered once, and
cancels even that timer on every byte received. A socket that never sends
anything, or drips one header byte a second, is held forever: enough of them
exhaust the file descriptors and cut everyone off. Here a connection must
deliver a complete request head within ``timeout_keep_alive`` of opening or of
its previous answer, whatever it sends meanwhile; the head's size is capped by
h11 (``h11_max_incomplete_event_size``), where httptools accepts any size.

``selfcheck serve`` runs uvicorn with ``http="app.server_protocol:HeadDeadlineH11Protocol"``.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineH11Protocol(H11Protocol):
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        waiting_for_head = self.conn.their_state is h11.IDLE
        super().handle_events()
        # The head is complete once h11 has moved past IDLE for this cycle.
        if waiting_for_head and self.conn.their_state is not h11.IDLE:
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_too_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_late(self) -> None:
        self._head_deadline = None
        # Only while no request is being served: never cut an answer short.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
