"""deploy/redis/outbox.acl.template, filled in as docs/OPERATIONS.md 11.7 says, loaded into
a real redis-server as its ``aclfile``: the API user may append and do nothing else, the
sender user may do what the worker does, and the send-worker's compose health check
passes with the sender's password and fails with a wrong one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.exceptions import AuthenticationError, NoPermissionError

from app.delivery.outbox import redis_client
from tests.deploy.dockerfile import option
from tests.deploy.test_compose import ACL_TEMPLATE, COMPOSE, env_example, interpolated
from tests.support.servers import free_port, stop_process, wait_for_port

STREAM = "selfcheck:outbox"
PASSWORDS = {
    "@OUTBOX_ADMIN_PASSWORD@": "admin-deploy-test",
    "@OUTBOX_API_PASSWORD@": "api-deploy-test",
    "@OUTBOX_SENDER_PASSWORD@": "sender-deploy-test",
}


def fill_template(text: str) -> str:
    """What the operator's sed does (docs/OPERATIONS.md 11.7)."""
    for placeholder, password in PASSWORDS.items():
        text = text.replace(placeholder, password)
    assert "@OUTBOX_" not in text
    return text


def compose_services() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """redis-server with the compose outbox's options and the filled-in ACL file."""
    directory = tmp_path_factory.mktemp("outbox")
    acl = directory / "outbox.acl"
    acl.write_text(fill_template(ACL_TEMPLATE.read_text()))
    command = compose_services()["outbox"]["command"]
    port = free_port()
    binary = shutil.which("redis-server")
    assert binary, "redis-server not installed: run scripts/ensure-system-packages.sh"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--aclfile",
            str(acl),
            "--appendonly",
            option(command, "--appendonly"),
            "--save",
            "",
            "--maxmemory-policy",
            option(command, "--maxmemory-policy"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        stop_process(process)


def client(port: int, user: str, password: str) -> redis.Redis:
    """The app's own client (no retry: a refused password fails at once)."""
    return redis_client(f"redis://{user}@127.0.0.1:{port}/0", password, 5.0)


def test_the_api_user_may_append_and_nothing_else(outbox: int) -> None:
    api = client(outbox, "selfcheck-api", PASSWORDS["@OUTBOX_API_PASSWORD@"])
    try:
        api.xadd(STREAM, {b"e": b"x"})
        for command in (
            lambda: api.xread({STREAM: "0"}),
            lambda: api.xrange(STREAM),
            lambda: api.get(STREAM),
            lambda: api.get("LIMITS:anything"),
            lambda: api.keys("*"),
            lambda: api.xadd(f"{STREAM}:dead", {b"e": b"x"}),
            lambda: api.xtrim(STREAM, maxlen=0),
        ):
            with pytest.raises(NoPermissionError):
                command()
    finally:
        api.close()


def test_the_sender_user_may_consume_but_not_append_to_the_stream(outbox: int) -> None:
    sender = client(outbox, "selfcheck-sender", PASSWORDS["@OUTBOX_SENDER_PASSWORD@"])
    admin = client(outbox, "default", PASSWORDS["@OUTBOX_ADMIN_PASSWORD@"])
    try:
        admin.xadd(STREAM, {b"e": b"y"})
        sender.xgroup_create(STREAM, "senders", id="0", mkstream=True)
        ((_, entries),) = sender.xreadgroup("senders", "sender-1", {STREAM: ">"})
        entry_id = entries[0][0]
        assert sender.xack(STREAM, "senders", entry_id) == 1
        assert sender.xdel(STREAM, entry_id) == 1
        sender.set(f"{STREAM}:sender:sent:x", 1)
        for command in (
            lambda: sender.xadd(STREAM, {b"e": b"forged"}),
            lambda: sender.get("LIMITS:anything"),
            lambda: sender.keys("*"),
        ):
            with pytest.raises(NoPermissionError):
                command()
        with pytest.raises(AuthenticationError):
            client(outbox, "selfcheck-api", PASSWORDS["@OUTBOX_SENDER_PASSWORD@"]).ping()
    finally:
        sender.close()
        admin.delete(STREAM)
        admin.close()


def _worker_check(port: int, password: str, secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The send-worker's compose health check (its ``python -c`` code, run in this
    process to spare a start-up), with its compose environment."""
    worker = compose_services()["send-worker"]
    test = worker["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    environment = interpolated(worker["environment"], env_example())
    environment["SELFCHECK_OUTBOX_URL"] = environment["SELFCHECK_OUTBOX_URL"].replace(
        "@outbox:6379", f"@127.0.0.1:{port}"
    )
    environment["SELFCHECK_SECRETS_DIR"] = str(secrets)
    secrets.mkdir()
    (secrets / environment["SELFCHECK_OUTBOX_PASSWORD_FILE"]).write_text(password)
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("SELFCHECK_")]:
            patch.delenv(key)
        for key, value in environment.items():
            patch.setenv(key, value)
        exec(compile(test[3], "healthcheck", "exec"), {})  # noqa: S102 (our compose file)


def test_the_send_workers_health_check_asks_the_outbox_as_the_sender(
    outbox: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _worker_check(outbox, PASSWORDS["@OUTBOX_SENDER_PASSWORD@"], tmp_path / "good", monkeypatch)
    with pytest.raises(AuthenticationError):
        _worker_check(outbox, "wrong-password", tmp_path / "bad", monkeypatch)
