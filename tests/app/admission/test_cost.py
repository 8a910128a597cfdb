"""The adaptive cost step and the attack signal, on a fake clock and a scripted load."""

from __future__ import annotations

import logging

import pytest

from app.admission.cost import CALM_FOR_S, LOOK_EVERY_S, CostControl
from app.admission.pow import PROFILES, CostSteps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def control(loads: list[float], attack_after_s: float = 60) -> tuple[CostControl, Clock]:
    clock = Clock()
    steps = CostSteps(PROFILES["standard"], 1000, 8000)
    return CostControl(steps.top, attack_after_s, lambda: loads[0], clock), clock


def test_steps_double_the_solve_time_from_min_to_max() -> None:
    steps = CostSteps(PROFILES["standard"], 1000, 8000)
    assert steps.top == 3
    widths = [steps.counter_range(step) for step in range(steps.top + 1)]
    assert widths[:3] == [widths[0], 2 * widths[0], 4 * widths[0]]
    cap = round(2 * 8000 / PROFILES["standard"].attempt_ms)  # the max solve time
    assert widths[3] == min(8 * widths[0], cap)
    # With a 6 s maximum, the top step (3, i.e. 8 s doubled) is held to 6 s.
    six = round(2 * 6000 / PROFILES["standard"].attempt_ms)
    assert CostSteps(PROFILES["standard"], 1000, 6000).counter_range(3) == six
    # A median solve is W/2 attempts: W/2 x attempt time is the stated solve time.
    assert widths[0] / 2 * PROFILES["standard"].attempt_ms == pytest.approx(1000, rel=0.05)
    assert steps.counter_range(99) == widths[-1]


def test_the_step_rises_under_load_and_falls_back_when_calm() -> None:
    loads = [0.9]
    cost, clock = control(loads)
    seen = []
    for _ in range(5):
        seen.append(cost.update())
        clock.now += LOOK_EVERY_S
    assert seen == [1, 2, 3, 3, 3]
    loads[0] = 0.1
    cost.update()
    assert cost.step == 3  # not calm for long enough yet
    clock.now += CALM_FOR_S
    assert cost.update() == 2
    clock.now += LOOK_EVERY_S
    assert cost.update() == 2  # one notch per calm period
    clock.now += CALM_FOR_S
    assert cost.update() == 1


def test_the_load_is_read_at_most_once_per_period() -> None:
    reads = []
    clock = Clock()
    cost = CostControl(3, 60, lambda: reads.append(1) or 0.0, clock)
    for _ in range(10):
        cost.update()
    assert len(reads) == 1


def test_the_attack_signal_rises_after_the_top_step_holds(caplog: pytest.LogCaptureFixture) -> None:
    loads = [0.95]
    cost, clock = control(loads, attack_after_s=30)
    with caplog.at_level(logging.WARNING, logger="app.admission"):
        for _ in range(3):
            cost.update()
            clock.now += LOOK_EVERY_S
        assert cost.step == 3
        assert not cost.under_attack
        clock.now += 30
        cost.update()
        assert cost.under_attack
        loads[0] = 0.1
        clock.now += CALM_FOR_S
        cost.update()
        assert not cost.under_attack
    messages = [r.getMessage() for r in caplog.records]
    assert any("attack signal raised" in m for m in messages)
    assert any("attack signal cleared" in m for m in messages)
