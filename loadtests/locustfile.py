"""Locust entry point: the users of every scenario in ``loadtests/scenarios/catalogue.py``,
and the hooks that keep the run's ledger.

    PYTHONPATH=. .venv/bin/locust -f loadtests/locustfile.py --headless ...

Normally started by ``loadtests/run.sh``, which also starts the API and Redis and
judges the thresholds afterwards. Locust imports this file in its own (gevent
monkey-patched) process; nothing here may be imported into pytest.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from locust import User, events
from locust.env import Environment

from loadtests.config import load_config
from loadtests.scenarios.catalogue import SCENARIOS, Scenario
from loadtests.scenarios.common import ledger


def _user_class(scenario: Scenario) -> type[User]:
    module, _, name = scenario.user_class.partition(":")
    cls: type[User] = getattr(importlib.import_module(module), name)
    if scenario.fixed_users:
        cls.fixed_count = scenario.fixed_users
    return cls


# Locust runs every User class it finds in this module's namespace (under any name, so
# no loop variable may keep one): exactly one per scenario.
globals().update({cls.__name__: cls for cls in map(_user_class, SCENARIOS)})


@events.init.add_listener
def _check_config(environment: Environment, **_: Any) -> None:
    # Fail at start-up, not in every user, when a file or a setting is wrong.
    config = load_config()
    for path in (config.probes, config.leaked_list):
        if not path.is_file():
            raise SystemExit(f"locustfile: {path} not found (see loadtests/README.md)")


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_: Any) -> None:
    ledger().spawn_complete = time.time()


@events.test_stopping.add_listener
def _load_ended(**_: Any) -> None:
    # The run time is up: from here users only finish their journeys, a tail that is not
    # the offered rate, so the steady-rate window ends here.
    ledger().load_ended = time.time()


@events.test_stop.add_listener
def _write_ledger(environment: Environment, **_: Any) -> None:
    record = ledger()
    record.stopped = time.time()
    run_dir = load_config().run_dir
    if run_dir is not None:
        record.write(run_dir)
