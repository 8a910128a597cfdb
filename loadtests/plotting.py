"""PNG plots for docs/BENCHMARKS.md (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Steps = Sequence[Mapping[str, Any]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def latency_vs_load(
    curves: Mapping[str, Steps], floor_ms: float, budget_ms: float, out: Path
) -> None:
    """p50 / p95 / p99 against offered load, one colour per configuration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for (label, steps), colour in zip(
        curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        x = [s["offered_rps"] for s in steps]
        for key, style, name in (
            ("p50_ms", "-", "p50"),
            ("p95_ms", ":", "p95"),
            ("p99_ms", "--", "p99"),
        ):
            ax.plot(
                x,
                [s[key] for s in steps],
                style,
                marker="o",
                ms=3,
                color=colour,
                label=f"{label} {name}",
            )
    ax.axhline(floor_ms, color="grey", lw=0.8)
    ax.axhline(budget_ms, color="red", lw=0.8, ls="--", label=f"p99 budget ({budget_ms:g} ms)")
    ax.set_xlabel("offered load (checks/s) = closed-loop users x 1000 / floor")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title("/v1/check latency vs offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def throughput_vs_load(curves: Mapping[str, Steps], out: Path) -> None:
    """Achieved checks/s and the API's CPU use against offered load."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=120, sharex=True)
    highest = 0.0
    for label, steps in curves.items():
        x = [s["offered_rps"] for s in steps]
        highest = max(highest, *x)
        top.plot(x, [s["achieved_rps"] for s in steps], marker="o", ms=3, label=label)
        bottom.plot(x, [s["api_cores"] for s in steps], marker="o", ms=3, label=label)
    top.plot([0, highest], [0, highest], color="grey", lw=0.8, ls="--", label="achieved = offered")
    top.set_ylabel("achieved (checks/s)")
    top.set_title("Throughput and API CPU vs offered load")
    top.legend(fontsize=8)
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("API CPU (cores busy)")
    bottom.set_xlabel("offered load (checks/s)")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def build_time_vs_records(
    points: Sequence[Mapping[str, Any]],
    profile: str,
    out: Path,
    reference: Sequence[Mapping[str, Any]] = (),
    fit: tuple[float, float] | None = None,
) -> None:
    """Measured builds, larger reference builds (e.g. the load test's), and the linear
    model ``fixed + seconds_per_record * records`` drawn across both."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs = [p["rows"] for p in points]
    workers = points[0]["workers"]
    ax.plot(xs, [p["seconds"] for p in points], "o-", label=f"measured, {workers} workers")
    if reference:
        ax.plot(
            [p["rows"] for p in reference],
            [p["seconds"] for p in reference],
            "s",
            color="tab:red",
            label="run.sh's cached builds (machine shared)",
        )
    if fit is not None and fit[1] > 0:
        top = max([*xs, *(p["rows"] for p in reference)])
        line = [min(xs), top]
        ax.plot(line, [fit[0] + fit[1] * x for x in line], ":", color="grey", label="linear fit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records in the export")
    ax.set_ylabel("build time (s)")
    ax.set_title(f"Index build time vs records ({profile} profile)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def pow_cost_per_step(profiles: Mapping[str, Steps], out: Path) -> None:
    """Per cost step: the phone's median solve (s) and the attacker's core-seconds per
    answer, one colour per proof-of-work profile; the issue's target of 1 core-s dashed."""
    plt = _pyplot()
    fig, (phone, attacker) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    for (label, steps), colour in zip(
        profiles.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        x = [s["step"] for s in steps]
        phone.plot(x, [s["phone_median_solve_s"] for s in steps], "-o", color=colour, label=label)
        attacker.plot(
            x, [s["attacker_core_s_per_answer"] for s in steps], "-o", color=colour, label=label
        )
    phone.set_title("patient: median solve, Chromium CPU x4 (s)")
    attacker.set_title("attacker: core-seconds per admitted answer")
    attacker.axhline(1.0, color="red", lw=0.8, ls="--", label="target at the top step")
    for ax in (phone, attacker):
        ax.set_xlabel("cost step")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
