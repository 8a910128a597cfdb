"""Every scenario of the load test, listed once: the runner, the Locust entry point, the
user count and the thresholds all read this table, so a new scenario is one module in
``loadtests/scenarios/`` plus one entry here.

An entry names its Locust user class by import path (this module imports no Locust:
the thresholds and pytest read it), how many users of it run (0: the patients, who
fill the rest), and, for an attack, what the thresholds recount from the ledger:
the scenario's ledger names, and the ``Settings`` attribute holding the limit its
admitted requests must never exceed per key.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.ledger import LIST_MANY_NETWORKS, LIST_ONE_NETWORK, NIR_COMPLETION


@dataclass(frozen=True, slots=True)
class AttackCheck:
    """One attacker threshold: per key of ``ledger_name``, admitted <= the limit, and refused."""

    ledger_name: str
    label: str
    #: ``app.settings.Settings`` attribute holding the limit string (e.g. "5/minute;20/hour").
    limit_setting: str
    #: What a ledger key is: a "network", a "victim"...
    unit: str
    #: An attack never refused proves nothing about the limit: fail it.
    must_be_refused: bool = True


@dataclass(frozen=True, slots=True)
class Scenario:
    #: "package.module:Class", imported by the locustfile only.
    user_class: str
    #: Users of this class in every run; 0 for the patients (the rest of ``--users``).
    fixed_users: int
    attacks: tuple[AttackCheck, ...] = ()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("loadtests.scenarios.patient:PatientUser", fixed_users=0),
    Scenario("loadtests.scenarios.practice_embed:PracticeEmbedUser", fixed_users=2),
    Scenario(
        "loadtests.scenarios.list_validation:ListValidationAttacker",
        fixed_users=1,
        attacks=(
            AttackCheck(
                LIST_ONE_NETWORK,
                "list validation from one network",
                "limits_per_network",
                "network",
            ),
            AttackCheck(
                LIST_MANY_NETWORKS,
                "list validation from many networks",
                "limits_per_network",
                "network",
            ),
        ),
    ),
    Scenario(
        "loadtests.scenarios.nir_completion:NirCompletionAttacker",
        fixed_users=1,
        attacks=(
            AttackCheck(NIR_COMPLETION, "NIR completion", "limits_per_identity_unproven", "victim"),
        ),
    ),
    # Judged as a whole (loadtests/thresholds.py, botnet_verdicts): the unproven bots against
    # the unproven class's ceiling, the patients' answers and latency while it runs.
    # 16 bots at one answer per floor offer ~60 checks/s: the 2,000 addresses in ~35 s.
    Scenario("loadtests.scenarios.botnet:BotnetUnprovenBot", fixed_users=16),
    Scenario("loadtests.scenarios.botnet:BotnetSolvingBot", fixed_users=2),
    Scenario("loadtests.scenarios.shared_address:SharedAddressPatient", fixed_users=4),
)


def fixed_users() -> int:
    """Users of the fixed-count scenarios (attackers, practice pages), spawned first."""
    return sum(s.fixed_users for s in SCENARIOS)


def attack_checks() -> tuple[AttackCheck, ...]:
    return tuple(check for s in SCENARIOS for check in s.attacks)
