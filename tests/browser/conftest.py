"""Browser tests: one Chromium per module, a fresh tab per test, and where the screenshots
and accessibility reports went."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.helpers import Tab, open_tab
from tests.support.browser import ARTIFACTS, launch_chromium


def pytest_terminal_summary(terminalreporter: Any) -> None:
    directory = ARTIFACTS / "browser"
    if directory.is_dir() and any(directory.iterdir()):
        terminalreporter.write_line(f"browser screenshots and axe reports: {directory}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    tab = open_tab(browser)
    yield tab
    tab.page.context.close()
