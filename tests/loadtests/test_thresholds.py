"""What the summary says beside the verdicts."""

from __future__ import annotations

from pathlib import Path

from loadtests.thresholds import render
from tests.loadtests.simulated_runs import rate_verdict, simulated_run


def test_the_summary_says_not_judged(tmp_path: Path) -> None:
    verdict = rate_verdict(simulated_run(15))
    text = render([verdict], {}, tmp_path, 0)
    assert "| not judged |" in text
    assert text.startswith(f"# Load test {tmp_path.name}: PASSED")


def test_the_summary_warns_when_the_machine_was_busy(tmp_path: Path) -> None:
    conditions = tmp_path / "conditions.txt"
    conditions.write_text("nproc=2 loadavg_before=9.51 9.17 6.31\nloadavg_after=11.09 9.64 6.69\n")
    assert "load average up to 11.09 on 2 cores" in render([], {}, tmp_path, 0)
    conditions.write_text("nproc=2 loadavg_before=0.5 0.4 0.3\nloadavg_after=1.9 1 1\n")
    assert "busy" not in render([], {}, tmp_path, 0)
