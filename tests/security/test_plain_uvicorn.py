"""What holds even when someone starts the app by hand with plain `uvicorn --factory`.

`selfcheck serve` is the one documented launcher; a hand-started uvicorn keeps
its defaults (access log on). `create_app` silences the access log itself, so no
client address reaches the log whichever way the app was started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import serve_env
from tests.support.dataset import Dataset
from tests.support.servers import free_port, served

pytestmark = [pytest.mark.security, pytest.mark.slow]


def test_a_hand_started_uvicorn_logs_no_client_address(dataset: Dataset, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "uvicorn.log"
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, **serve_env(dataset, SELFCHECK_RESPONSE_FLOOR_MS="0")}
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=handle)
    with served(process, port, log) as server:
        transport = httpx.HTTPTransport(local_address="127.0.0.44")
        with httpx.Client(base_url=server.url, transport=transport, timeout=10) as client:
            client.post("/v1/check", json={"nir": "x"})
            client.get("/nowhere")
    text = log.read_text(errors="replace")
    assert "Uvicorn running" in text  # the log is there, and uvicorn wrote to it
    assert "127.0.0.44" not in text
    # No access-log line ("POST /v1/check HTTP/1.1" 422); the app's own request line names
    # the route template and nothing of the client (tests/app/test_request_log.py).
    assert '"POST /v1/check' not in text
    assert "HTTP/1.1" not in text
