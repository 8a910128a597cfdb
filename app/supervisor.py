"""The launcher's supervisor for several workers: uvicorn's, but SIGHUP reloads the index.

uvicorn's ``Multiprocess`` answers SIGHUP by restarting every worker; here it is passed
on to each worker, which reloads its index in place (``app/reloader.py``): no worker
stops, no connection is dropped, and a refused index leaves every worker serving the
old one. Every other signal keeps uvicorn's meaning.
"""

from __future__ import annotations

import logging
import os
import signal

from uvicorn.supervisors import Multiprocess

#: uvicorn's exit status when the server could not start (uvicorn.main.STARTUP_FAILURE).
STARTUP_FAILURE = 3

logger = logging.getLogger("uvicorn.error")


class ReloadingMultiprocess(Multiprocess):
    def handle_hup(self) -> None:
        logger.info("Received SIGHUP: every worker reloads the index.")
        for process in self.processes:
            pid = process.pid
            if pid is not None:
                os.kill(pid, signal.SIGHUP)
