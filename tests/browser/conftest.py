"""Browser tests: print where their screenshots and accessibility reports went."""

from __future__ import annotations

from typing import Any

from tests.support.browser import ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    directory = ARTIFACTS / "browser"
    if directory.is_dir() and any(directory.iterdir()):
        terminalreporter.write_line(f"browser screenshots and axe reports: {directory}")
