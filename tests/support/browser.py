"""Debian's Chromium driven by Playwright, and a plain static server for cross-origin host pages.

No browser is ever downloaded: `make test` installs the `chromium` package
(scripts/ensure-system-packages.sh) and Playwright is pointed at it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import free_port, stop_process, wait_for_port

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium not installed: run scripts/ensure-system-packages.sh")
    return path


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=30_000
    )


def artifact_dir(name: str) -> Path:
    """A directory under test-artifacts/ (gitignored) for screenshots and reports."""
    directory = ARTIFACTS / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class StaticServer:
    port: int
    directory: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def static_server(directory: Path, log: Path) -> Iterator[StaticServer]:
    """`python -m http.server` on loopback: a second origin for host pages."""
    port = free_port()
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "http.server", str(port),
                "--bind", "127.0.0.1", "--directory", str(directory),
            ],
            stdout=handle,
            stderr=handle,
        )  # fmt: skip
    try:
        wait_for_port(port)
        yield StaticServer(port, directory)
    finally:
        stop_process(process)
