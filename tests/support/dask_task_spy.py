"""A `dask worker --preload` for the build tests: saves every task the worker starts.

Each task's run spec (function and arguments, as the scheduler sent them) is
pickled into ``$TASK_SPY_DIR``, so a test can check what a worker received,
e.g. rows and salt but never the pepper. Test-only: never preload it on a real
build worker, it writes identities to disk.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol.pickle import dumps


class TaskSpy(WorkerPlugin):
    def __init__(self, worker: Any, directory: Path) -> None:
        self.worker = worker
        self.directory = directory

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing":
            return
        task = self.worker.state.tasks.get(key)
        if task is not None and task.run_spec is not None:
            (self.directory / f"{self.worker.name}-{uuid.uuid4().hex}.pickle").write_bytes(
                dumps(task.run_spec)
            )


def dask_setup(worker: Any) -> None:
    worker.plugins["task-spy"] = TaskSpy(worker, Path(os.environ["TASK_SPY_DIR"]))
