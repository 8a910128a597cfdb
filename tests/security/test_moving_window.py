"""A burst straddling a window edge is bounded as a moving window bounds it.

The README promises "never more than N admitted in any interval of length W,
whatever the alignment". A fixed window (or a sliding counter) would admit up to
2N around the edge: this test fails on either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.app.helpers import CHECK, GENEROUS_LIMITS
from tests.support.dataset import Dataset
from tests.support.rate_limits import check_body, valid_probes

pytestmark = [pytest.mark.security]

N, WINDOW_S = 4, 2.0


async def test_a_burst_straddling_the_window_edge_gets_no_second_allowance(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    limits = {**GENEROUS_LIMITS, "limits_per_network": f"{N} per {WINDOW_S:.0f} seconds"}
    _, http = await app_factory(client_ip="127.0.5.1", **limits)
    bodies = iter([check_body(p) for p in valid_probes(dataset.probes)])

    async def burst(count: int) -> list[int]:
        answers = await asyncio.gather(*(http.post(CHECK, json=next(bodies)) for _ in range(count)))
        return [a.status_code for a in answers]

    started = time.monotonic()
    assert await burst(1) == [200]  # opens a fixed window here
    await asyncio.sleep(WINDOW_S * 0.7 - (time.monotonic() - started))
    late = await burst(N - 1)  # the rest of the allowance, late in the window
    assert sorted(late) == [200] * (N - 1)
    assert time.monotonic() - started < WINDOW_S * 0.95, "too slow to straddle the edge"
    await asyncio.sleep(WINDOW_S * 1.15 - (time.monotonic() - started))
    # Past the edge: a fixed window starts afresh (N more); the moving window still holds
    # the N - 1 late hits and frees only the first one.
    after_edge = await burst(N)
    assert sorted(after_edge) == [200] + [429] * (N - 1)
