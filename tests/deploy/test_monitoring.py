"""deploy/'s monitoring: alert rules valid for promtool, every query naming a real metric."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "selfcheck.json"
#: Names a query may use: ours as exposed (with a counter's and a histogram's suffixes),
#: and Redis's exporter's for the memory alert.
EXPORTER_METRICS = {"redis_memory_used_bytes", "redis_memory_max_bytes", "up"}
METRIC_NAME = re.compile(r"\b(selfcheck_[a-z0-9_]+|redis_[a-z0-9_]+|up)\b")


def exposed_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return {n for n in names if n.startswith("selfcheck_")} | EXPORTER_METRICS


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool not installed: run scripts/ensure-system-packages.sh"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def _rule_expressions() -> dict[str, str]:
    data = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["expr"] for group in data["groups"] for r in group["rules"]}


def test_the_issue_s_alerts_are_there() -> None:
    rules = _rule_expressions()
    expressions = " ".join(rules.values())
    for metric in (
        "selfcheck_floor_overruns_total",
        "selfcheck_unavailable_total",
        "selfcheck_checks_hashed_total",
        "selfcheck_refusals_total",
        "redis_memory_used_bytes",
        "selfcheck_index_build_timestamp_seconds",
    ):
        assert metric in expressions, metric


def _dashboard_expressions() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in data["panels"] for t in panel["targets"]]


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_query_names_only_metrics_that_exist(source: str) -> None:
    exprs = _rule_expressions().values() if source == "rules" else _dashboard_expressions()
    known = exposed_names()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "no metric found in the queries"
    assert used - known == set()


def test_no_metric_counts_outcomes() -> None:
    for name in exposed_names():
        assert not re.search(r"affected|not_found|outcome|found", name), name
