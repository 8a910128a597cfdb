"""Settings: SELFCHECK_* variables, validated at start-up; no secret in a repr, log or error."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.support.dataset import Dataset

REDIS_PASSWORD = "hunter2-not-a-real-password"  # noqa: S105 - a made-up value to look for


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("SELFCHECK_"):
            monkeypatch.delenv(name)


def test_defaults_are_those_of_the_issue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.response_floor_ms == 250
    assert settings.max_body_bytes == 2048
    assert settings.hash_concurrency == (os.cpu_count() or 1)
    assert settings.trusted_proxies == []
    assert settings.allowed_origins == []
    assert settings.docs_enabled is False


def test_environment_variables_are_read_with_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SELFCHECK_INDEX_PATH", str(tmp_path / "i.bin"))
    monkeypatch.setenv("SELFCHECK_RESPONSE_FLOOR_MS", "300")
    monkeypatch.setenv("SELFCHECK_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("SELFCHECK_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("SELFCHECK_TRUSTED_PROXIES", "10.0.0.0/8 2001:db8::/32")
    monkeypatch.setenv("SELFCHECK_HASH_CONCURRENCY", "3")
    monkeypatch.setenv("SELFCHECK_DOCS_ENABLED", "true")
    monkeypatch.setenv("RESPONSE_FLOOR_MS", "1")  # unprefixed: ignored
    settings = Settings()
    assert settings.index_path == tmp_path / "i.bin"
    assert settings.response_floor_ms == 300
    assert settings.max_body_bytes == 4096
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "2001:db8::/32"]
    assert settings.hash_concurrency == 3
    assert settings.docs_enabled is True


def test_no_dotenv_is_read_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SELFCHECK_RESPONSE_FLOOR_MS=999\nRATELIMIT_ENABLED=false\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().response_floor_ms == 250
    assert Settings(_env_file=tmp_path / ".env").response_floor_ms == 999  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "overrides",
    [
        {"response_floor_ms": -1},
        {"max_body_bytes": 10},
        {"hash_concurrency": 0},
        {"trusted_proxies": "not-a-network"},
        {"log_level": "verbose"},
        {"allowed_origins": "https://a.example/path"},
        {"frame_ancestors": "https://a.example;"},
    ],
)
def test_invalid_values_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)


#: One bad value per setting that can hold one, as an operator would write it.
BAD_VALUES = {
    "RESPONSE_FLOOR_MS": "-1",
    "MAX_BODY_BYTES": "10",
    "ALLOWED_ORIGINS": "https://practice.example/page",
    "TRUSTED_PROXIES": "10.0.0.0/33",
    "HASH_CONCURRENCY": "0",
    "DOCS_ENABLED": "maybe",
    "RESPONSE_SIZE": "100",
    "LOG_LEVEL": "verbose",
    "RATE_LIMIT_STORAGE": "memcached://127.0.0.1:11211",
    "LIMITS_PER_NETWORK": "five a minute",
    "LIMITS_PER_IPV6_48": "",
    "LIMITS_PER_IDENTITY": "10/fortnight",
    "LIMITS_PER_NIR_PREFIX": "60 a day",
    "GLOBAL_LIMIT": "forty",
    "LIMITS_PER_IPV4_24": "20",
    "LIMITS_PER_IPV6_32": "100/fortnight",
    "LIMITS_PER_IDENTITY_UNPROVEN": "three",
    "LIMITS_PER_ADDRESS_PROVEN": ";",
    "GLOBAL_LIMIT_PROVEN": "40 per sec",
    "LIMITS_JUNK": "lots",
    "LIMITS_CHALLENGE": "",
    "ADMISSION_WAIT_MS": "-1",
    "POW": "maybe",
    "POW_PROFILE": "paranoid",
    "POW_MIN_SOLVE_MS": "0",
    "POW_MAX_SOLVE_MS": "0",
    "POW_TTL_S": "5",
    "POW_POOL_SIZE": "0",
    "POW_POOL_CPU_SHARE": "0",
    "POW_ESCALATE_AFTER": "sixty",
    "ATTACK_AFTER_S": "0",
    "RATE_LIMIT_TIMEOUT_MS": "10",
    "WORKERS": "0",
    "FRAME_ANCESTORS": "'self'; script-src *",
    "PORT": "70000",
    "BODY_TIMEOUT_S": "0",
    "HEALTH_ALLOWED": "127.0.0.1/40",
    "KEEP_ALIVE_S": "0",
    "MAX_IN_FLIGHT": "-1",
    "ALLOW_TEST_PROFILE": "maybe",
    "REQUIRE_SIGNED_INDEX": "maybe",
    "KEY_BACKEND": "hsm",
    "PKCS11_TIMEOUT_MS": "10",
    "LOG_FORMAT": "xml",
    "METRICS_PORT": "0",
    "INDEX_WATCH": "maybe",
    "DELIVERY": "sometimes",
    "OUTBOX_STREAM": "an outbox",
    "SMTP_URL": "smtp://user:secret@mail.example:587",
    "MAIL_FROM": "no address",
    "PUBLIC_ORIGIN": "https://check.example/page",
    "OUTBOX_RETENTION_DAYS": "0",
    "SEND_MAX_ATTEMPTS": "0",
    "SEND_RETRY_BASE_S": "0",
    "SEND_RATE_PER_S": "0",
    "SEND_CONTACT_INTERVAL_DAYS": "0",
    "SEND_WORKER_NAME": "worker one",
}


def test_every_setting_with_a_bounded_value_has_a_bad_value_here() -> None:
    unbounded = {  # checked when opened
        *("index_path", "key_file", "secrets_dir", "host", "index_public_key_file"),
        *("pkcs11_library", "pkcs11_token_label", "pkcs11_key_label", "pkcs11_pin_file"),
        *("rate_limit_password_file", "rate_limit_key_file"),
        *("metrics_host", "content_dir"),
        *("outbox_url", "outbox_password_file", "outbox_key_file", "sender_key_file"),
        *("smtp_username_file", "smtp_password_file"),
    }
    assert {name.lower() for name in BAD_VALUES} == set(Settings.model_fields) - unbounded


@pytest.mark.parametrize(("name", "value"), sorted(BAD_VALUES.items()))
def test_a_bad_value_is_a_one_line_refusal_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    from app.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(f"SELFCHECK_{name}", value)
    with pytest.raises(SystemExit) as refused:
        main(["serve"])  # refused while reading the settings, before anything is opened
    message = str(refused.value.code)
    assert message.startswith(f"selfcheck: invalid setting SELFCHECK_{name}: ")
    assert "\n" not in message
    assert "Traceback" not in message


def test_memory_storage_with_several_workers_is_refused_clearly() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(workers=2, rate_limit_storage="memory://")
    message = refused.value.errors()[0]["msg"]
    assert "memory://" in message
    assert "SELFCHECK_RATE_LIMIT_STORAGE" in message
    assert Settings(workers=2, rate_limit_storage="redis://127.0.0.1:6379/0").workers == 2


def test_a_bare_key_file_name_is_looked_up_in_the_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dataset: Dataset
) -> None:
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "selfcheck-pepper").write_bytes(dataset.key.read_bytes())
    monkeypatch.chdir(tmp_path)  # no file of that name here
    monkeypatch.setenv("SELFCHECK_KEY_FILE", "selfcheck-pepper")
    monkeypatch.setenv("SELFCHECK_SECRETS_DIR", str(secrets_dir))
    settings = Settings()
    assert settings.resolved_key_file() == secrets_dir / "selfcheck-pepper"
    assert settings.load_pepper().get_secret_value() == dataset.key.read_bytes()
    # A path with a directory part is taken as given.
    monkeypatch.setenv("SELFCHECK_KEY_FILE", "elsewhere/selfcheck-pepper")
    assert Settings().resolved_key_file() == Path("elsewhere/selfcheck-pepper")


def test_the_default_secrets_directory_is_run_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().resolved_key_file() == Path("/run/secrets/selfcheck.key")


def test_secrets_never_show_in_a_repr_or_an_error(dataset: Dataset) -> None:
    storage = f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    settings = Settings(key_file=dataset.key, rate_limit_storage=storage, workers=2)
    pepper = settings.load_pepper()
    raw = dataset.key.read_bytes()
    for text in (repr(settings), str(settings), repr(pepper), str(pepper)):
        assert REDIS_PASSWORD not in text
        assert raw.hex() not in text
        assert repr(raw) not in text
    with pytest.raises(ValidationError) as refused:
        Settings(rate_limit_storage=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0", workers=0)
    assert REDIS_PASSWORD not in str(refused.value)


async def test_start_up_logs_no_secret(
    app_factory: Callable[..., Any], dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, http = await app_factory()
    assert (await http.get("/readyz")).status_code == 200
    raw = dataset.key.read_bytes()
    assert "index loaded" in caplog.text
    assert raw.hex() not in caplog.text
    assert repr(raw)[2:-1] not in caplog.text
