"""A wall clock a test moves by hand, for modules that read ``time.time()``.

The memory store and strategies of ``limits`` and the network gate each import ``time``
and call ``time.time()``; replacing that module attribute in each makes a window's edge
exact and costs no wall time.
"""

from __future__ import annotations

import types

import pytest


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def install_clock(monkeypatch: pytest.MonkeyPatch, now: float, *modules: object) -> FakeClock:
    """A clock at ``now`` read by every one of ``modules`` as their ``time.time()``."""
    fake = FakeClock(now)
    for module in modules:
        monkeypatch.setattr(module, "time", types.SimpleNamespace(time=fake.time))
    return fake
