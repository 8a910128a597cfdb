"""Index hot reload on a change of the file alone (watchfiles), in process.

Reload by SIGHUP under a steady stream of checks on a real two-worker server is the
last test of tests/app/test_metrics_and_logs_process.py (it shares that server).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.dataset import Dataset
from tests.support.incidents import TwoIncidents, build_two_incidents, index_id, replace_index


@pytest.fixture(scope="module")
def two(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TwoIncidents:
    return build_two_incidents(dataset, tmp_path_factory.mktemp("reload-incidents"))


@pytest.fixture
def watched(tmp_path: Path, two: TwoIncidents) -> Path:
    served = tmp_path / "watched" / "served.bin"
    served.parent.mkdir()
    shutil.copyfile(two.first, served)
    return served


async def test_a_changed_index_file_is_reloaded_and_answers(
    app_factory: Callable[..., Any], two: TwoIncidents, watched: Path
) -> None:
    app, http = await app_factory(index_path=watched, index_watch=True, **GENEROUS_LIMITS)
    probe = two.second_only[0]
    before = orjson.loads((await http.post(CHECK, json=body_of(probe))).content)
    assert before["status"] == "not_found"
    readyz = (await http.get("/readyz")).json()
    assert readyz["index_id"] == index_id(two.first)
    replace_index(two.second, watched)
    deadline = time.monotonic() + 20
    while (await http.get("/readyz")).json()["index_id"] != index_id(two.second):
        assert time.monotonic() < deadline, "the watcher did not reload"
        await asyncio.sleep(0.2)
    after = orjson.loads((await http.post(CHECK, json=body_of(probe))).content)
    assert after["status"] == "affected"
    metrics = app.state.metrics.exposition().decode()
    assert 'selfcheck_index_reloads_total{result="loaded"} 1.0' in metrics


async def test_a_change_made_while_the_watch_is_being_set_up_is_not_missed(
    app_factory: Callable[..., Any],
    two: TwoIncidents,
    watched: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watcher thread registers its watch a moment after start-up; no event tells of a
    change made meanwhile. The index must be reloaded all the same."""
    import watchfiles

    real_watch = watchfiles.watch
    registering = threading.Event()

    def slow_watch(*args: Any, **kwargs: Any) -> Any:
        registering.wait(10)  # the index is replaced before the watch exists
        time.sleep(0.1)
        return real_watch(*args, **kwargs)

    monkeypatch.setattr(watchfiles, "watch", slow_watch)
    _, http = await app_factory(index_path=watched, index_watch=True, **GENEROUS_LIMITS)
    replace_index(two.second, watched)
    registering.set()
    deadline = time.monotonic() + 20
    while (await http.get("/readyz")).json()["index_id"] != index_id(two.second):
        assert time.monotonic() < deadline, "a change made before the watch was missed"
        await asyncio.sleep(0.2)
    after = orjson.loads((await http.post(CHECK, json=body_of(two.second_only[0]))).content)
    assert after["status"] == "affected"
