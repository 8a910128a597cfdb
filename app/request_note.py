"""What a request's code tells its observer (metrics, log line) without passing it around.

The observing middleware puts one :class:`RequestNote` in a context variable; the route's
worker thread runs in a copy of that context, so it reaches the same object and writes
into it (the bucket that refused, why a 503). Only fixed names go in: never an input.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestNote:
    #: The admission bucket that refused the request (a name from app/admission/buckets.py).
    refused_by: str | None = None
    #: That bucket's admission class: proven, unproven or any.
    refused_class: str | None = None
    #: What failed when the answer is a 503: store, key or overload.
    unavailable: str | None = None


current_note: ContextVar[RequestNote | None] = ContextVar("selfcheck_request_note", default=None)


def note_refusal(bucket: str, admission: str) -> None:
    note = current_note.get()
    if note is not None:
        note.refused_by, note.refused_class = bucket, admission


def note_unavailable(cause: str) -> None:
    note = current_note.get()
    if note is not None:
        note.unavailable = cause
