"""The challenge pool keeps ready what is drawn, not a fixed size remade for nobody."""

from __future__ import annotations

from typing import Any

from app.admission.pool import MIN_READY, SPARE_PER_STEP, ChallengePool


def filled(pool: ChallengePool) -> int:
    made = 0
    while pool.fill_once():
        made += 1
    return made


def test_a_calm_pool_keeps_a_few_and_a_busy_one_keeps_twice_its_demand() -> None:
    made: list[int] = []

    def create(step: int) -> dict[str, Any]:
        made.append(step)
        return {"step": step}

    pool = ChallengePool(create, 3, 64, 0.25, 60.0, lambda: 0)
    # Calm: MIN_READY at the current step, SPARE_PER_STEP at each other one.
    assert filled(pool) == MIN_READY + 3 * SPARE_PER_STEP
    assert pool.ready(0) == MIN_READY
    assert pool.ready(2) == SPARE_PER_STEP
    # Twenty drawn within the age limit: forty kept ready, never more than the size.
    for _ in range(20):
        assert pool.take(0) is not None
        filled(pool)
    assert pool.ready(0) == 40
    for _ in range(60):
        pool.take(0)
        filled(pool)
    assert pool.ready(0) == 64


def test_a_pool_smaller_than_the_minimum_keeps_its_size() -> None:
    pool = ChallengePool(lambda step: {"step": step}, 0, 1, 0.25, 60.0, lambda: 0)
    assert filled(pool) == 1
    assert pool.take(0) == {"step": 0}
    assert pool.take(0) is None
