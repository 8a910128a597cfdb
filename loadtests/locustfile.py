"""Locust entry point: the scenario users, and the hooks that keep the run's ledger.

    PYTHONPATH=. .venv/bin/locust -f loadtests/locustfile.py --headless ...

Normally started by ``loadtests/run.sh``, which also starts the API and Redis and
judges the thresholds afterwards. Locust imports this file in its own (gevent
monkey-patched) process; nothing here may be imported into pytest.
"""

from __future__ import annotations

import time
from typing import Any

from locust import events
from locust.env import Environment

from loadtests.config import load_config
from loadtests.scenarios.common import ledger
from loadtests.scenarios.list_validation import ListValidationAttacker
from loadtests.scenarios.nir_completion import NirCompletionAttacker
from loadtests.scenarios.patient import PatientUser
from loadtests.scenarios.practice_embed import PracticeEmbedUser

__all__ = ["ListValidationAttacker", "NirCompletionAttacker", "PatientUser", "PracticeEmbedUser"]


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
