"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.app.helpers import GENEROUS_LIMITS


@pytest.fixture
async def generous(app_factory: Callable[..., Any]) -> httpx.AsyncClient:
    """An in-process client whose rate limits never get in the way of the test."""
    _, http = await app_factory(**GENEROUS_LIMITS)
    return http
