"""The capacity model and its report, from what ``bench_capacity.py`` measured: the
curve's steps, the model fitted on them, the Markdown tables and the plots (also what
``--replot`` redraws from a saved ``capacity.json``, without measuring again)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests import plotting

#: Utilisation a capacity plan should not exceed at peak: on the measured curve p99 stays
#: within floor + 100 ms up to ~60 % of the machine busy and exceeds it by ~75 %.
TARGET_UTILISATION = 0.6


@dataclass(frozen=True, slots=True)
class Step:
    users: int
    offered_rps: float
    achieved_rps: float
    checks: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    api_cpu_s: float
    api_cores: float
    api_cpu_ms_per_check: float
    locust_cpu_s: float
    machine_busy: float


def vars_of(step: Step) -> dict[str, Any]:
    return {name: getattr(step, name) for name in step.__dataclass_fields__}


# --- the model ----------------------------------------------------------------------------------
def capacity_model(
    argon2: dict[str, float],
    steps: Sequence[Step],
    measured_profile: str,
    builds: Sequence[dict[str, Any]],
    build_profile: str,
    parse_rows_per_s: float | None,
) -> dict[str, Any]:
    """Cores for a peak, and 15M-record build times, from the measured costs."""
    model: dict[str, Any] = {"argon2_ms": argon2, "target_utilisation": TARGET_UTILISATION}
    # CPU per check below saturation (where the achieved rate still follows the offered
    # one): the median of those steps, for both worker counts.
    unsaturated = [s for s in steps if s.checks and s.achieved_rps >= 0.9 * s.offered_rps]
    per_check = sorted(s.api_cpu_ms_per_check for s in unsaturated or steps if s.checks)
    if per_check:
        cpu_ms = per_check[len(per_check) // 2]
        overhead = max(cpu_ms - argon2[measured_profile], 0.0)
        model["api_cpu_ms_per_check"] = cpu_ms
        model["overhead_ms_per_check"] = overhead
        model["cores_for_peak"] = {
            profile: {
                str(peak): math.ceil(peak * (ms + overhead) / 1000 / TARGET_UTILISATION)
                for peak in (50, 100, 250, 500, 1000, 2000)
            }
            for profile, ms in argon2.items()
        }
    if builds:
        largest = max(builds, key=lambda b: b["rows"])
        keys_per_row = largest["keys_hashed"] / largest["rows"]
        fixed_s, per_key_s = _fit_line([(b["keys_hashed"], b["seconds"]) for b in builds])
        # Marginal cost per key (the fixed start-up cost excluded) against the ideal:
        # every worker hashing all the time.
        ideal_per_key_s = argon2[build_profile] / 1000 / largest["workers"]
        efficiency = min(ideal_per_key_s / per_key_s, 1.0) if per_key_s > 0 else 1.0
        model["build"] = {
            "keys_per_row": keys_per_row,
            "fixed_seconds": fixed_s,
            "seconds_per_key": per_key_s,
            "parallel_efficiency": efficiency,
            "parse_rows_per_s": parse_rows_per_s,
        }
        rows = 15_000_000
        model["build_15m_hours"] = {
            profile: {
                str(cores): _build_hours(
                    rows, keys_per_row, ms, cores, efficiency, parse_rows_per_s
                )
                for cores in (2, 16, 64)
            }
            for profile, ms in argon2.items()
        }
    return model


def _fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope; through the origin for a single point."""
    if len(points) == 1:
        x, y = points[0]
        return 0.0, y / x
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def _build_hours(
    rows: int, keys_per_row: float, argon2_ms: float, cores: int, efficiency: float,
    parse_rows_per_s: float | None,
) -> float:  # fmt: skip
    hashing = rows * keys_per_row * argon2_ms / 1000 / (cores * efficiency)
    # One process reads and normalises the export: past some core count it is the limit.
    reading = rows / parse_rows_per_s if parse_rows_per_s else 0.0
    return round(max(hashing, reading) / 3600, 2)


def make_plots(result: dict[str, Any], img: Path) -> None:
    floor_ms = result["floor_ms"]
    if result.get("capacity"):
        plotting.latency_vs_load(
            result["capacity"], floor_ms, floor_ms + 100, img / "latency_vs_load.png"
        )
        plotting.throughput_vs_load(result["capacity"], img / "throughput_vs_load.png")
    if result.get("builds"):
        build = result.get("model", {}).get("build", {})
        plotting.build_time_vs_records(
            result["builds"],
            result["builds"][0]["profile"],
            img / "build_time_vs_records.png",
            reference=result.get("cached_builds", []),
            fit=(
                build.get("fixed_seconds", 0.0),
                build.get("seconds_per_key", 0.0) * build.get("keys_per_row", 1.0),
            ),
        )


def render_markdown(result: dict[str, Any]) -> str:
    """The tables docs/BENCHMARKS.md quotes."""
    lines: list[str] = []
    argon2 = result["argon2_ms"]
    lines += [
        "| profile | Argon2id CPU per hash |",
        "|---|---|",
        *(f"| {name} | {ms:.3f} ms |" for name, ms in argon2.items()),
        "",
    ]
    for label, steps in result.get("capacity", {}).items():
        lines += [
            f"**{label}**",
            "",
            "| users | offered checks/s | achieved checks/s | p50 ms | p95 ms | p99 ms "
            "| API cores busy | API CPU ms/check | machine busy |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {s['users']} | {s['offered_rps']:.0f} | {s['achieved_rps']:.1f} | "
                f"{s['p50_ms']:g} | {s['p95_ms']:g} | {s['p99_ms']:g} | {s['api_cores']:.2f} | "
                f"{s['api_cpu_ms_per_check']:.1f} | {s['machine_busy']:.0%} |"
                for s in steps
            ),
            "",
        ]
    builds = [*result.get("builds", []), *result.get("cached_builds", [])]
    if builds:
        lines += [
            "| records | keys hashed | profile | workers | build time | source |",
            "|---:|---:|---|---:|---:|---|",
            *(
                f"| {b['rows']:,} | {b['keys_hashed']:,} | {b['profile']} | {b['workers']} | "
                f"{b['seconds']:.1f} s | {b.get('source', 'bench_capacity.py')} |"
                for b in builds
            ),
            "",
        ]
    model = result.get("model", {})
    if "cores_for_peak" in model:
        peaks = list(next(iter(model["cores_for_peak"].values())))
        lines += [
            f"API CPU per check (median below saturation): {model['api_cpu_ms_per_check']:.1f} ms"
            f" = Argon2 + {model['overhead_ms_per_check']:.1f} ms overhead; cores at "
            f"{model['target_utilisation']:.0%} utilisation:",
            "",
            "| profile | CPU ms/check | " + " | ".join(f"{p}/s" for p in peaks) + " |",
            "|---|---:|" + "---:|" * len(peaks),
            *(
                f"| {name} | {argon2[name] + model['overhead_ms_per_check']:.1f} | "
                + " | ".join(str(cores[p]) for p in peaks)
                + " |"
                for name, cores in model["cores_for_peak"].items()
                if name != "test"
            ),
            "",
        ]
    if "build_15m_hours" in model:
        b = model["build"]
        lines += [
            f"Build: {b['keys_per_row']:.3f} keys/record, {b['seconds_per_key'] * 1000:.3f} ms "
            f"per key with {builds[0]['workers']} workers (parallel efficiency "
            f"{b['parallel_efficiency']:.0%}), serial reader {b['parse_rows_per_s']:,.0f} "
            "records/s. 15,000,000 records:",
            "",
            "| profile | 2 cores | 16 cores | 64 cores |",
            "|---|---:|---:|---:|",
            *(
                f"| {name} | " + " | ".join(_hours(h) for h in hours.values()) + " |"
                for name, hours in model["build_15m_hours"].items()
                if name != "test"
            ),
            "",
        ]
    return "\n".join(lines)


def _hours(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 2 else f"{hours * 60:.0f} min"
