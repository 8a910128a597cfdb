"""`make mutation`: mutmut 3 over the security-bearing modules, one module at a time.

Each module is mutated alone, in its own work directory (.mutation/<name>/, a copy of the
code and tests with that module's [tool.mutmut] section), and checked only by its fast
in-process tests: tests that start real processes (redis-server, uvicorn, subprocesses)
stay out. The generated test dataset is built once and shared by every mutant's session.

Survivors are printed with their diff. docs/MUTATION.md lists the triaged ones (backquoted
mutant names in its "Equivalent mutants" section): the rest are "unexplained" and make the
run exit 1. Kill rate = (killed + timed out) / (mutants - equivalent), per module.

    python scripts/mutation.py                 # every module (about half an hour on 2 cores)
    python scripts/mutation.py padding floor   # some of them
    python scripts/mutation.py --list
    python scripts/mutation.py --report floor  # the last floor run, against today's triage
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
DOC = REPO / "docs" / "MUTATION.md"
#: Never run under mutation: tests that start processes or need a real Redis.
EXCLUDE_MARKS = "not slow and not security and not redis and not browser"
COPIED = ("app", "lookup_index", "tests", "loadtests", "docs")


@dataclass(frozen=True)
class Target:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    #: a pytest -k expression: parametrised Redis cases, or a test that spawns a process
    keyword: str = "not redis"


TARGETS: dict[str, Target] = {
    "padding": Target(
        ("app/padded_json.py",),
        ("tests/app/test_padded_json.py",),
        "not python_optimisations",
    ),
    "floor": Target(
        ("app/middleware/response_floor.py",),
        (
            "tests/app/middleware/test_response_floor.py",
            "tests/app/middleware/test_floor_every_status.py",
        ),
        # Its upper bound (0.75 s) does not hold on mutmut's instrumented, loaded runs.
        "not redis and not deadline_runs_from_arrival",
    ),
    "client-address": Target(("app/client_address.py",), ("tests/app/test_client_address.py",)),
    "rate-limits": Target(
        ("app/rate_limit.py", "app/admission/buckets.py"),
        (
            "tests/app/test_rate_limit.py",
            "tests/app/test_storage_keys.py",
            "tests/app/test_partial_store_outage.py",
            "tests/app/admission/test_moving_window_bound.py",
            "tests/app/admission/test_stage_order.py",
            "tests/app/admission/test_escalation_meters.py",
            "tests/app/admission/test_identity_buckets.py",
            "tests/app/admission/test_buckets.py",
            "tests/app/admission/test_gate.py",
            "tests/app/admission/test_refusal_notes.py",
            "tests/app/middleware/test_floor_every_status.py",
            "tests/app/test_rate_limit_store.py::test_storage_options_bound_every_wait",
            "tests/app/test_rate_limit_store.py::test_the_timeouts_reach_the_redis_connections",
        ),
        # that one connects nowhere (it reads a connection's options): not a Redis test
        "not redis or timeouts_reach_the_redis_connections",
    ),
    "errors": Target(
        ("app/errors.py",),
        (
            "tests/app/test_errors.py",
            "tests/app/test_error_table.py",
            "tests/app/test_input_bounds.py",
            "tests/app/middleware/test_floor_every_status.py",
        ),
    ),
    "gate": Target(
        ("app/admission/gate.py",),
        (
            "tests/app/admission/test_gate.py",
            "tests/app/admission/test_refusal_notes.py",
            "tests/app/middleware/test_floor_every_status.py",
        ),
    ),
    "normalisation": Target(
        ("lookup_index/normalise.py",),
        ("tests/lookup_index/test_normalise.py", "tests/lookup_index/test_recall.py"),
    ),
    "reader": Target(
        ("lookup_index/reader.py",),
        (
            "tests/lookup_index/test_reader.py",
            "tests/lookup_index/test_index_format.py",
            "tests/lookup_index/test_signing.py",
            "tests/lookup_index/test_contacts_build.py",
        ),
    ),
    "keyed-hash": Target(
        ("lookup_index/keyed_hash.py",), ("tests/lookup_index/test_keyed_hash.py",)
    ),
}

STATUSES = ("killed", "survived", "timeout", "no tests", "suspicious", "skipped", "segfault")


def config_section(target: Target) -> str:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    selection = [*target.tests, "-m", EXCLUDE_MARKS, "-k", target.keyword]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["app", "lookup_index"]\n'
        f"only_mutate = {toml_list(list(target.modules))}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(selection)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        # docs: some tests hold the code to what the docs promise (bucket names, settings)
        'also_copy = ["loadtests", "docs"]\n'
    )


def prepare(name: str, target: Target) -> Path:
    """A fresh copy of the code and tests, with this target's mutmut configuration."""
    work = WORK / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for directory in COPIED:
        shutil.copytree(REPO / directory, work / directory, ignore=ignore)
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (work / "pyproject.toml").write_text(pyproject + config_section(target), encoding="utf-8")
    return work


def mutmut(work: Path, *args: str, log: Path | None = None) -> str | int:
    env = {
        **os.environ,
        "SELFCHECK_TEST_DATASET_CACHE": str(WORK / "dataset"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    if log is None:
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, check=False)
        return done.stdout.decode(errors="replace")
    with log.open("wb") as handle:
        return subprocess.run(
            command, cwd=work, env=env, stdout=handle, stderr=handle, check=False
        ).returncode


def equivalents() -> set[str]:
    """Mutant names triaged as equivalent in docs/MUTATION.md (its backquoted names)."""
    if not DOC.exists():
        return set()
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Equivalent mutants", 1)[-1] if "## Equivalent mutants" in text else ""
    return set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", section))


def run_target(name: str, target: Target, children: int, *, report_only: bool) -> dict[str, object]:
    started = time.monotonic()
    work = WORK / name
    if report_only:  # the last run's results, triaged against today's docs/MUTATION.md
        if not (work / "mutants").is_dir():
            return {"name": name, "failed": f"no earlier run in .mutation/{name}"}
    else:
        work = prepare(name, target)
        code = mutmut(work, "run", "--max-children", str(children), log=work / "run.log")
        if code != 0:  # e.g. the unmutated tests failed: nothing to report
            return {
                "name": name,
                "failed": f"mutmut run exited {code}, see .mutation/{name}/run.log",
            }
    listing = str(mutmut(work, "results", "--all", "true"))
    results: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if match:
            results[match.group(1)] = match.group(2).strip()
    known = equivalents()
    survivors = sorted(m for m, s in results.items() if s not in ("killed", "timeout"))
    equivalent = [m for m in survivors if m in known]
    unexplained = [m for m in survivors if m not in known]
    counts = {s: sum(1 for v in results.values() if v == s) for s in STATUSES}
    relevant = len(results) - len(equivalent)
    # A mutant that makes the tests hang (timeout) is detected, like a killed one.
    rate = (counts["killed"] + counts["timeout"]) / relevant if relevant else 1.0
    with (work / "survivors.txt").open("w", encoding="utf-8") as out:
        for mutant in survivors:
            out.write(f"### {mutant}: {results[mutant]}\n{mutmut(work, 'show', mutant)}\n")
    return {
        "name": name,
        "mutants": len(results),
        "counts": counts,
        "equivalent": equivalent,
        "unexplained": unexplained,
        "rate": rate,
        "minutes": (time.monotonic() - started) / 60,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)}")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--children", type=int, default=2, help="mutants run at once")
    parser.add_argument(
        "--report",
        action="store_true",
        help="do not run: report the last run's results against docs/MUTATION.md as it is now",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name}: {' '.join(target.modules)} <- {' '.join(target.tests)}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        print(f"mutation: unknown target(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    failed = False
    for name in args.targets or list(TARGETS):
        report = run_target(name, TARGETS[name], args.children, report_only=args.report)
        if "failed" in report:
            print(f"{name}: not run: {report['failed']}", flush=True)
            failed = True
            continue
        counts = report["counts"]
        assert isinstance(counts, dict)
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        print(
            f"{name}: {report['mutants']} mutants ({summary}); "
            f"{len(report['equivalent'])} equivalent (docs/MUTATION.md); "  # type: ignore[arg-type]
            f"kill rate {report['rate']:.1%}"
            + ("" if args.report else f"; {report['minutes']:.1f} min"),
            flush=True,
        )
        for mutant in report["unexplained"]:  # type: ignore[attr-defined]
            print(f"  survivor: {mutant} (diff in .mutation/{name}/survivors.txt)")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
