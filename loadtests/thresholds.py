"""Judge a load-test run: read Locust's CSV and the scenarios' ledger, check every
threshold, write ``summary.md`` and ``summary.json``, exit 1 if any threshold failed.

    python -m loadtests.thresholds loadtests/results/<run>

Thresholds (see README.md, "Reading the results"):

- patients: no unexpected outcome (wrong answer, 429, 5xx, wrong body size), p99 of
  their checks within the response floor + margin, at (nearly) the target rate;
- practice pages: no error;
- attackers: admitted requests never exceed the configured limits in any window
  (recounted here from the ledger), and each attack was actually refused at least
  once (an attack too small to meet its limit proves nothing);
- botnet (``botnet_verdicts``): it used its distinct source addresses; its unproven
  bots got at most the unproven class's ceiling; patients' checks while it ran were
  answered (>= 99 %) within floor + 500 ms at p95; patients behind one shared address
  were answered (>= 99 %).

No Locust import here: pytest imports this module.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.ledger import (
    BOTNET_SOLVING,
    BOTNET_UNPROVEN,
    PATIENT_CHECK_NAME,
    PATIENTS,
    SHARED_ADDRESS,
    WHOLE_CLASS,
    AttackLog,
    Tier,
    breaches,
    max_in_window,
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
    #: The unproven class's global ceiling (``SELFCHECK_GLOBAL_LIMIT``).
    unproven_ceiling: str = "5/second"
    #: Distinct source addresses the botnet must have used.
    botnet_addresses: int = 2000
    botnet_p95_margin_ms: float = 500
    answered_share: float = 0.99

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
            unproven_ceiling=config.service.global_limit,
            botnet_addresses=config.botnet_addresses,
            botnet_p95_margin_ms=config.botnet_p95_margin_ms,
            answered_share=config.answered_share,
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
    verdicts += botnet_verdicts(ledger, attacks, criteria)
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


#: Window (client time) over which the unproven bots' admissions are compared with the ceiling.
CEILING_WINDOW_S = 10.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def _answered(label: str, checks: list[list[float]], criteria: Criteria) -> tuple[bool, str]:
    answered = sum(1 for c in checks if c[2])
    share = answered / len(checks) if checks else 0.0
    return (
        bool(checks) and share >= criteria.answered_share,
        f"{answered} of {len(checks)} {label} answered ({share:.1%})",
    )


def botnet_verdicts(
    ledger: dict[str, Any], attacks: dict[str, AttackLog], criteria: Criteria
) -> list[Verdict]:
    """The botnet and shared-address thresholds (issue 10), from the ledger alone."""
    verdicts: list[Verdict] = []
    sources = ledger.get("sources", {})
    used = set(sources.get(BOTNET_UNPROVEN, ())) | set(sources.get(BOTNET_SOLVING, ()))
    # Each request comes from the next address: a run that sent fewer requests than the
    # botnet has addresses cannot show them all (a short run): not judged, never failed.
    sent = sum(
        attacks.get(name, AttackLog()).attempts for name in (BOTNET_UNPROVEN, BOTNET_SOLVING)
    )
    threshold = f"botnet: at least {criteria.botnet_addresses} distinct source addresses"
    measured = f"{len(used)} loopback addresses (each its own /24, the socket's peer)"
    if sent < criteria.botnet_addresses:
        verdicts.append(
            Verdict(
                threshold,
                passed=True,
                measured=f"not judged: {measured} over {sent} requests, too few to use them all",
                judged=False,
            )
        )
    else:
        verdicts.append(
            Verdict(
                threshold,
                passed=len(used) >= criteria.botnet_addresses,
                measured=f"{measured} over {sent} requests",
            )
        )

    # The ceiling's own window is too short to judge from client send times (clock slack):
    # over CEILING_WINDOW_S, arrivals span at most the window plus the slack, which meets
    # at most ceil(that / expiry) + 1 of the ceiling's windows, each admitting `amount`.
    (ceiling,) = Tier.parse_many(criteria.unproven_ceiling)[:1]
    span = CEILING_WINDOW_S + criteria.clock_slack_s
    allowed = ceiling.amount * (math.ceil(span / ceiling.window_s) + 1)
    log = attacks.get(BOTNET_UNPROVEN, AttackLog())
    admitted = log.admitted.get(WHOLE_CLASS, [])
    most = max_in_window(admitted, CEILING_WINDOW_S)
    refused = log.outcomes.get("refused (429)", 0)
    verdicts.append(
        Verdict(
            f"botnet, unproven bots: admitted <= the unproven ceiling ({ceiling}), and refused",
            passed=most <= allowed and refused > 0,
            measured=(
                f"{log.attempts} attempts, {len(admitted)} admitted, {refused} refused; at most "
                f"{most} admitted in {CEILING_WINDOW_S:g} s (allowed {allowed}: the ceiling "
                f"over {span:g} s with the clock slack)"
            ),
        )
    )

    bot_times = [t for a in (BOTNET_UNPROVEN, BOTNET_SOLVING) for t in _sent(ledger, a)]
    cohorts = ledger.get("cohorts", {})
    start, end = (min(bot_times), max(bot_times)) if bot_times else (0.0, -1.0)
    during = [c for c in cohorts.get(PATIENTS, []) if start <= c[0] <= end]
    budget = criteria.floor_ms + criteria.botnet_p95_margin_ms
    ok, measured = _answered("checks", during, criteria)
    answered_ms = [c[1] for c in during if c[2]]
    p95 = _percentile(answered_ms, 0.95) if answered_ms else float("inf")
    verdicts.append(
        Verdict(
            f"patients under the botnet: >= {criteria.answered_share:.0%} answered, p95 <= "
            f"floor + {criteria.botnet_p95_margin_ms:g} ms ({budget:g} ms; payloads pre-solved)",
            passed=ok and p95 <= budget,
            measured=f"{measured}, p95 {p95:.0f} ms",
        )
    )
    shared = cohorts.get(SHARED_ADDRESS, [])
    ok, measured = _answered("checks", shared, criteria)
    verdicts.append(
        Verdict(
            f"patients behind one shared address: >= {criteria.answered_share:.0%} answered",
            passed=ok,
            measured=measured + " (each fetched a challenge, waited its solve time)",
        )
    )
    return verdicts


def _sent(ledger: dict[str, Any], scenario: str) -> list[float]:
    """Send times of a botnet scenario's requests: its admitted ones, and its sources' span."""
    admitted = ledger.get("attacks", {}).get(scenario, {}).get("admitted", {})
    return [float(t) for times in admitted.values() for t in times]


def botnet_cost_note(ledger: dict[str, Any]) -> str:
    """What the solving bots paid: their CPU seconds per admitted answer."""
    cpu = float(ledger.get("solve_cpu_s", {}).get(BOTNET_SOLVING, 0.0))
    log = AttackLog.from_dict(ledger.get("attacks", {}).get(BOTNET_SOLVING, {}))
    answers = sum(len(t) for t in log.admitted.values())
    if not answers:
        return ""
    return (
        f"Botnet, solving bots: {answers} answers for {cpu:.1f} CPU-seconds of Python "
        f"(argon2-cffi) solving: {cpu / answers:.2f} core-s per admitted answer."
    )


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
    verdicts: list[Verdict],
    stats: dict[str, RequestStats],
    run_dir: Path,
    overruns: int,
    notes: Iterable[str] = (),
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
        *(f"\n{note}" for note in notes if note),
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
    ledger = read_ledger(run_dir)
    verdicts = evaluate(
        stats, read_failures(run_dir / FAILURES_FILE), ledger, Criteria.from_environment()
    )
    overruns = _server_floor_overruns(run_dir)
    text = render(verdicts, stats, run_dir, overruns, [botnet_cost_note(ledger)])
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
