"""A password-protected redis-server: the password comes from a file, never from the URL."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.dataset import Dataset
from tests.support.servers import RedisServer, redis_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Path]]:
    directory = tmp_path_factory.mktemp("redis-auth")
    password = secrets.token_urlsafe(24)
    (directory / "redis.conf").write_text(f"requirepass {password}\n")
    password_file = directory / "redis.password"
    password_file.write_text(password + "\n")
    with redis_server(directory / "data", config=directory / "redis.conf") as server:
        yield server, password_file


async def test_checks_pass_with_the_password_file_and_fail_closed_without(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    protected: tuple[RedisServer, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, password_file = protected
    probe = dataset.by_expected("affected")[0]
    store = {"rate_limit_storage": server.url, **GENEROUS_LIMITS}
    _, authenticated = await app_factory(**store, rate_limit_password_file=password_file)
    answer = await authenticated.post(CHECK, json=body_of(probe))
    assert answer.status_code == 200
    assert answer.json()["status"] == "affected"
    _, anonymous = await app_factory(**store)
    refused = await anonymous.post(CHECK, json=body_of(probe))
    assert refused.status_code == 503
    assert len(refused.content) == len(answer.content)
    password = password_file.read_text().strip()
    assert password not in caplog.text


def test_an_unreadable_password_file_is_refused_at_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="rate_limit_password_file"):
        make_settings(rate_limit_password_file=tmp_path / "absent")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        make_settings(rate_limit_password_file=tmp_path / "empty")


def test_a_bare_password_file_name_is_read_from_the_secrets_dir(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "redis_password").write_text("from-the-secrets-dir\n")
    settings = make_settings(secrets_dir=tmp_path, rate_limit_password_file=Path("redis_password"))
    assert settings.rate_limit_password() == "from-the-secrets-dir"
    assert "from-the-secrets-dir" not in repr(settings)
