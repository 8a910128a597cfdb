"""The service on the pkcs11 key backend: answers through a real SoftHSM2 token, fails closed.

Each test imports the dataset's pepper into the session's token under its own label,
so the token must give exactly the digests of the file the index was built with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pkcs11.exceptions import DeviceError

from app import state as app_state
from app.check_service import CheckService
from lookup_index.pepper import load_pepper
from lookup_index.pkcs11_backend import Pkcs11KeyBackend, destroy_key, import_key
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, envelope
from tests.support.dataset import Dataset
from tests.support.softhsm import SoftHsm


@pytest.fixture
def token_key(softhsm: SoftHsm, dataset: Dataset) -> Iterator[dict[str, Any]]:
    """Settings overrides for the dataset's key, imported into the token."""
    label = softhsm.new_label()
    import_key(softhsm.config(label), load_pepper(dataset.key))
    yield {
        "key_backend": "pkcs11",
        "key_file": dataset.directory / "absent.key",  # the token, not a file, holds the key
        "pkcs11_library": softhsm.config(label).library,
        "pkcs11_token_label": softhsm.config(label).token_label,
        "pkcs11_key_label": label,
        "pkcs11_pin_file": softhsm.pin_file,
        **GENEROUS_LIMITS,
    }
    destroy_key(softhsm.config(label))


class SwitchableKey:
    """Fault injection around the token's key: real until told to hang like a dead token."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.hang = threading.Event()
        self.release = threading.Event()

    def __getitem__(self, attribute: Any) -> Any:
        return self.real[attribute]

    def sign(self, *args: Any, **kwargs: Any) -> bytes:
        if self.hang.is_set():
            self.release.wait(30)
            raise DeviceError("released")
        result: bytes = self.real.sign(*args, **kwargs)
        return result


@pytest.fixture
def switchable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SwitchableKey]]:
    keys: list[SwitchableKey] = []
    find = Pkcs11KeyBackend._find_key

    def wrapped(self: Pkcs11KeyBackend) -> Any:
        keys.append(SwitchableKey(find(self)))
        return keys[-1]

    monkeypatch.setattr(Pkcs11KeyBackend, "_find_key", wrapped)
    yield keys
    for key in keys:
        key.release.set()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[CheckService]:
    """Every CheckService the lifespans open, most recent last."""
    services: list[CheckService] = []
    original = app_state.open_service

    def recording(*args: Any) -> CheckService:
        services.append(original(*args))
        return services[-1]

    monkeypatch.setattr(app_state, "open_service", recording)
    return services


async def test_the_api_answers_through_the_token(
    app_factory: Callable[..., Any], dataset: Dataset, token_key: dict[str, Any]
) -> None:
    _, via_token = await app_factory(**token_key)
    _, via_file = await app_factory(**GENEROUS_LIMITS)
    for expected in ("affected", "not_found"):
        for probe in dataset.by_expected(expected)[:3]:
            answers = [await c.post(CHECK, json=body_of(probe)) for c in (via_token, via_file)]
            assert [a.status_code for a in answers] == [200, 200]
            assert [a.json()["status"] for a in answers] == [expected, expected]
            assert answers[0].json()["exposed"] == answers[1].json()["exposed"]


async def test_token_operations_equal_hashed_checks(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    token_key: dict[str, Any],
    opened: list[CheckService],
) -> None:
    _, client = await app_factory(**token_key)
    service = opened[-1]
    assert service.key_usage().key_operations == 0  # start-up's key check and subkeys excluded
    probes = dataset.by_expected("affected")[:2] + dataset.by_expected("not_found")[:2]
    for probe in probes:
        assert (await client.post(CHECK, json=body_of(probe))).status_code == 200
    await client.post(CHECK, json={"nir": "not a nir"})  # refused before the hash: no operation
    usage = service.key_usage()
    assert (usage.key_operations, usage.hashed_checks) == (4, 4)
    # Someone else using the key in this process shows as operations beyond the checks.
    service.hasher.key.hmac_sha256(b"an intruder's guess")
    usage = service.key_usage()
    assert usage.key_operations == usage.hashed_checks + 1


async def test_a_hung_token_answers_the_uniform_503_never_an_answer(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    token_key: dict[str, Any],
    switchable: list[SwitchableKey],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = await app_factory(**token_key, pkcs11_timeout_ms=300)
    affected = dataset.by_expected("affected")[0]
    healthy = await client.post(CHECK, json=body_of(affected))
    assert healthy.status_code == 200
    switchable[-1].hang.set()
    refusals: list[httpx.Response] = []
    for probe in [affected, dataset.by_expected("not_found")[0]]:
        started = time.monotonic()
        refusals.append(await client.post(CHECK, json=body_of(probe)))
        assert time.monotonic() - started < 5
    for refused in refusals:
        assert refused.status_code == 503
        assert refused.json()["error"] == "unavailable"
        assert "status" not in refused.json()
        assert len(refused.content) == len(healthy.content)
    assert envelope(refusals[0]) == envelope(refusals[1])
    assert "key token unavailable (KeyUnavailableError)" in caplog.text
    # The token answers again: so does the service, without a restart.
    switchable[-1].hang.clear()
    switchable[-1].release.set()
    assert (await client.post(CHECK, json=body_of(affected))).json()["status"] == "affected"


async def test_a_software_token_logs_a_start_up_warning(
    app_factory: Callable[..., Any], token_key: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="app.startup")
    await app_factory(**token_key)
    assert any("software token (SoftHSM2)" in r.getMessage() for r in caplog.records)


async def test_the_file_backend_logs_no_token_warning(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="app.startup")
    await app_factory(**GENEROUS_LIMITS)
    assert not any("software token" in r.getMessage() for r in caplog.records)


async def test_a_separate_rate_limit_key_keeps_counter_keys_across_a_pepper_rotation(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    opened: list[CheckService],
    tmp_path: Path,
) -> None:
    from lookup_index import canonical_identity, generate_pepper_file, load_pepper
    from lookup_index.builder import BuildOptions, build_index
    from lookup_index.profiles import TEST

    rotated_key, rotated_index, limits_key = (
        tmp_path / "p2.key",
        tmp_path / "i2.bin",
        tmp_path / "rl.key",
    )
    generate_pepper_file(rotated_key)
    generate_pepper_file(limits_key)
    build_index(
        BuildOptions(
            input=dataset.export,
            out=rotated_index,
            pepper=load_pepper(rotated_key),
            profile=TEST,
            workers=1,
        )
    )
    probe = dataset.by_expected("affected")[0]
    identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    await app_factory()  # pepper-derived counter keys
    await app_factory(rate_limit_key_file=limits_key)
    await app_factory(
        index_path=rotated_index, key_file=rotated_key, rate_limit_key_file=limits_key
    )
    await app_factory(index_path=rotated_index, key_file=rotated_key)
    # The storage key of this identity's NIR bucket, as each app would write it.
    old, kept, rotated, reset = (s.limits._mac("identity", identity.nir) for s in opened)
    assert kept == rotated  # the new pepper, the same counters
    assert old != kept
    assert reset != old  # without the separate key, a rotation starts every counter afresh
