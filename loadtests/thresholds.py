"""Judge a load-test run: read Locust's CSV and the scenarios' ledger, check every
threshold, write ``summary.md`` and ``summary.json``, exit 1 if any threshold failed.

    python -m loadtests.thresholds loadtests/results/<run>

Thresholds (see README.md, "Reading the results"):

- patients: no unexpected outcome (wrong answer, 429, 5xx, wrong body size), p99 of
  their checks within the response floor + margin, at (nearly) the target rate;
- practice pages: no error;
- attackers: admitted requests never exceed the configured limits in any window
  (recounted here from the ledger), and each attack was actually refused at least
  once (an attack too small to meet its limit proves nothing).

No Locust import here: pytest imports this module.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.ledger import (
    PATIENT_CHECK_NAME,
    AttackLog,
    Tier,
    breaches,
    read_ledger,
)
from loadtests.scenarios.catalogue import attack_checks
from loadtests.steady_rate import SteadyWindow, steady_window

STATS_FILE = "locust_stats.csv"
FAILURES_FILE = "locust_failures.csv"


@dataclass(frozen=True, slots=True)
class Criteria:
    floor_ms: float
    p99_margin_ms: float
    target_rate: float
    min_rate_share: float
    #: Limit strings by ``Settings`` attribute, for every attack in the scenario catalogue.
    limits: dict[str, str]
    clock_slack_s: float

    @classmethod
    def from_environment(cls) -> Criteria:
        from loadtests.config import load_config

        config = load_config()
        return cls(
            floor_ms=config.floor_ms,
            p99_margin_ms=config.p99_margin_ms,
            target_rate=config.target_rate,
            min_rate_share=config.min_rate_share,
            limits={
                check.limit_setting: str(getattr(config.service, check.limit_setting))
                for check in attack_checks()
            },
            clock_slack_s=config.clock_slack_s,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    threshold: str
    passed: bool
    measured: str
    #: False when the run could not measure it (too short): reported, never a failure.
    judged: bool = True


@dataclass(frozen=True, slots=True)
class RequestStats:
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rps: float


def read_stats(path: Path) -> dict[str, RequestStats]:
    def number(text: str) -> float:
        return float(text) if text not in ("", "N/A") else 0.0

    stats: dict[str, RequestStats] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            stats[row["Name"]] = RequestStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=number(row["50%"]),
                p95_ms=number(row["95%"]),
                p99_ms=number(row["99%"]),
                max_ms=number(row["Max Response Time"]),
                rps=number(row["Requests/s"]),
            )
    return stats


def read_failures(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [(r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(handle)]


def _plain(error: str) -> str:
    """Locust writes a failure as ``CatchResponseError('text')``: keep the text."""
    match = re.fullmatch(r"""CatchResponseError\((['"])(.*)\1\)""", error)
    return match.group(2) if match else error


def _group(stats: dict[str, RequestStats], prefix: str) -> tuple[int, int]:
    rows = [s for name, s in stats.items() if name.startswith(prefix)]
    return sum(s.requests for s in rows), sum(s.failures for s in rows)


def _attack_verdict(
    label: str, log: AttackLog, tiers: list[Tier], slack: float, unit: str, must_be_refused: bool
) -> Verdict:
    found = breaches(log.admitted, tiers, slack)
    refused = sum(n for outcome, n in log.outcomes.items() if outcome.startswith("refused"))
    admitted = sum(len(times) for times in log.admitted.values())
    most = max((len(times) for times in log.admitted.values()), default=0)
    limit = ";".join(str(t) for t in tiers)
    measured = (
        f"{log.attempts} attempts, {admitted} admitted over {len(log.admitted)} {unit}(s) "
        f"(at most {most} per {unit}; limit {limit}), {refused} refused"
    )
    if found:
        worst = max(found, key=lambda b: b.admitted_in_window - b.allowed)
        measured += (
            f"; BREACH on {len(found)} {unit}(s), worst {worst.admitted_in_window} "
            f"admitted in a {worst.tier} window"
        )
    return Verdict(
        f"{label}: admitted <= limit per {unit}, and refused",
        passed=not found and (refused > 0 or not must_be_refused),
        measured=measured
        if refused or not must_be_refused
        else measured + "; never refused (attack too small?)",
    )


def _rate_verdict(window: SteadyWindow | None, criteria: Criteria) -> Verdict:
    threshold = (
        f"patients: steady rate >= {criteria.min_rate_share:.0%} of the target "
        f"{criteria.target_rate:g} checks/s"
    )
    if window is None:
        return Verdict(threshold, True, "not judged: spawning never completed", judged=False)
    if not window.judged:
        return Verdict(
            threshold,
            passed=True,
            measured=(
                f"not judged: {window.seconds:.1f} s of steady load after a "
                f"{window.warmup_s:.1f} s warm-up, {window.needed_s:.1f} s needed "
                f"(about {window.duration_hint_s()} s more --duration)"
            ),
            judged=False,
        )
    needed = criteria.target_rate * criteria.min_rate_share
    return Verdict(
        threshold,
        passed=window.rate >= needed,
        measured=(
            f"{window.rate:.1f} checks/s over {window.seconds:.1f} s "
            f"(from {window.warmup_s:.1f} s after the last user spawned to the end of the load)"
        ),
    )


def evaluate(
    stats: dict[str, RequestStats],
    failures: Iterable[tuple[str, str, int]],
    ledger: dict[str, Any],
    criteria: Criteria,
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    failures = list(failures)

    patient_requests, patient_failures = _group(stats, "patient:")
    check = stats.get(PATIENT_CHECK_NAME)
    reasons = sorted(
        {f"{_plain(error)} x{n}" for name, error, n in failures if name.startswith("patient:")}
    )
    verdicts.append(
        Verdict(
            "patients: 0 unexpected errors",
            passed=check is not None and check.requests > 0 and patient_failures == 0,
            measured=f"{patient_failures} of {patient_requests} requests"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + ("" if check and check.requests else "; no check was made"),
        )
    )
    budget = criteria.floor_ms + criteria.p99_margin_ms
    p99 = check.p99_ms if check else float("inf")
    verdicts.append(
        Verdict(
            f"patients: check p99 <= floor + {criteria.p99_margin_ms:g} ms ({budget:g} ms)",
            passed=check is not None and check.requests > 0 and p99 <= budget,
            measured=(
                f"p50 {check.p50_ms:g} ms, p95 {check.p95_ms:g} ms, p99 {p99:g} ms, "
                f"max {check.max_ms:g} ms over {check.requests} checks"
                if check
                else "no check"
            ),
        )
    )
    verdicts.append(_rate_verdict(steady_window(ledger), criteria))
    embed_requests, embed_failures = _group(stats, "embed:")
    verdicts.append(
        Verdict(
            "practice embed: 0 errors",
            passed=embed_requests > 0 and embed_failures == 0,
            measured=f"{embed_failures} of {embed_requests} requests",
        )
    )

    attacks = {name: AttackLog.from_dict(d) for name, d in ledger.get("attacks", {}).items()}
    for check in attack_checks():
        verdicts.append(
            _attack_verdict(
                check.label,
                attacks.get(check.ledger_name, AttackLog()),
                Tier.parse_many(criteria.limits[check.limit_setting]),
                criteria.clock_slack_s,
                check.unit,
                check.must_be_refused,
            )
        )
    unexpected = {
        f"{scenario}: {outcome} x{n}"
        for scenario, log in attacks.items()
        for outcome, n in log.outcomes.items()
        if outcome.startswith("unexpected")
    }
    verdicts.append(
        Verdict(
            "attackers: no unexpected status (5xx, 422 on valid input)",
            passed=not unexpected,
            measured="; ".join(sorted(unexpected)) or "none",
        )
    )
    return verdicts


def _server_floor_overruns(run_dir: Path) -> int:
    log = run_dir / "api.log"
    if not log.exists():
        return 0
    return sum(
        "response floor overrun" in line for line in log.read_text(errors="replace").splitlines()
    )


def _result(verdict: Verdict) -> str:
    if not verdict.judged:
        return "not judged"
    return "pass" if verdict.passed else "FAIL"


def render(
    verdicts: list[Verdict], stats: dict[str, RequestStats], run_dir: Path, overruns: int
) -> str:
    passed = all(v.passed for v in verdicts)
    lines = [
        f"# Load test {run_dir.name}: {'PASSED' if passed else 'FAILED'}",
        "",
        "| threshold | result | measured |",
        "|---|---|---|",
        *(f"| {v.threshold} | {_result(v)} | {v.measured} |" for v in verdicts),
        "",
        "| request | count | failures | p50 ms | p95 ms | p99 ms | max ms | req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {s.name} | {s.requests} | {s.failures} | {s.p50_ms:g} | {s.p95_ms:g} | "
            f"{s.p99_ms:g} | {s.max_ms:g} | {s.rps:.1f} |"
            for s in stats.values()
        ),
        "",
        f"Server-side response-floor overruns (api.log): {overruns}",
    ]
    conditions = run_dir / "conditions.txt"
    if conditions.exists():
        text = conditions.read_text()
        busy = _busy_machine(text)
        if busy:
            lines += ["", busy]
        lines += ["", "Conditions:", "", "```", text.strip(), "```"]
    return "\n".join(lines) + "\n"


def _busy_machine(conditions: str) -> str:
    """A note when other work shared the cores: latency then measures the neighbours too."""
    found = dict(re.findall(r"(nproc|loadavg_before|loadavg_after)=([0-9.]+)", conditions))
    try:
        cores = int(found["nproc"])
        load = max(float(found.get("loadavg_before", 0)), float(found.get("loadavg_after", 0)))
    except (KeyError, ValueError):
        return ""
    if load <= cores:
        return ""
    return (
        f"Note: the machine was busy (load average up to {load:g} on {cores} cores, this run "
        "included): latency figures include the wait for a core; rerun on a quiet machine "
        "before reading a latency failure as the service's."
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m loadtests.thresholds RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    stats = read_stats(run_dir / STATS_FILE)
    verdicts = evaluate(
        stats,
        read_failures(run_dir / FAILURES_FILE),
        read_ledger(run_dir),
        Criteria.from_environment(),
    )
    overruns = _server_floor_overruns(run_dir)
    text = render(verdicts, stats, run_dir, overruns)
    (run_dir / "summary.md").write_text(text)
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "passed": all(v.passed for v in verdicts),
                "verdicts": [asdict(v) for v in verdicts],
                "requests": {name: asdict(s) for name, s in stats.items()},
                "floor_overruns": overruns,
            },
            indent=2,
        )
    )
    print(text, end="")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
