"""The runner's build-time estimate is measured, and scales as the build does."""

from __future__ import annotations

import pytest

from loadtests.build_estimate import BuildEstimate, estimate, hash_cpu_ms, keys_per_row, main


def test_the_estimate_is_keys_times_hash_time_over_workers() -> None:
    one = BuildEstimate(rows=1_000_000, keys_per_row=1.05, hash_ms=4.0, workers=2)
    assert one.seconds == pytest.approx(2100)
    assert "~35 min with 2 workers" in one.describe()
    assert BuildEstimate(1_000_000, 1.05, 4.0, workers=4).seconds == pytest.approx(1050)
    assert "~5.8 h" in BuildEstimate(1_000_000, 1.05, 40.0, workers=2).describe()


def test_the_costlier_profile_measures_costlier() -> None:
    # test: 8 KiB, one pass; standard: 19 MiB, two passes, hundreds of times the work.
    assert hash_cpu_ms("standard") > 20 * hash_cpu_ms("test")


def test_keys_per_record_counts_usage_names() -> None:
    # The generator gives ~15 % of women born before 2000 a usage name: ~1.05 keys a record.
    assert 1.0 < keys_per_row(2026) < 1.15


def test_all_cores_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert estimate(100, "test", 0, 1).workers >= 1
    assert main(["--rows", "1000000", "--profile", "fast", "--workers", "2"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("expected build time ~")
    assert "1,000,000 records" in line
    assert "load average now" in line
