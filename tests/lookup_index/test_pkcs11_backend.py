"""The pkcs11 key backend against a real SoftHSM2 token: same digests, key never readable."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive, DeviceError, UserAlreadyLoggedIn

from lookup_index.exceptions import KeyBackendError, KeyUnavailableError
from lookup_index.keyed_hash import KeyedHasher, derive_subkey, key_check_value
from lookup_index.pkcs11_backend import (
    SOFTHSM2_LIBRARY,
    Pkcs11KeyBackend,
    destroy_key,
    generate_key,
    import_key,
    read_pin_file,
)
from lookup_index.profiles import TEST
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER
from tests.support.softhsm import TOKEN_LABEL, SoftHsm

SALT = b"0123456789abcdef"
CANONICALS = [b"v1|1850375123456|1985-03-12|DUPONT", b"v1|285032A004123|1985-03-20|COEURDELION"]


@pytest.fixture
def imported(softhsm: SoftHsm) -> Iterator[Pkcs11KeyBackend]:
    """A backend on PEPPER imported into the token under a fresh label."""
    config = softhsm.config(softhsm.new_label(), timeout=1.0)
    import_key(config, PEPPER)
    backend = Pkcs11KeyBackend(config)
    yield backend
    backend.close()


def _raw_session(softhsm: SoftHsm) -> Any:
    """A session of our own, straight through python-pkcs11 (what an intruder would use)."""
    token = pkcs11.lib(str(SOFTHSM2_LIBRARY)).get_token(token_label=TOKEN_LABEL)
    try:
        return token.open(user_pin=softhsm.pin, rw=True)
    except UserAlreadyLoggedIn:
        return token.open(rw=True)


def _raw_key(softhsm: SoftHsm, label: str) -> Any:
    session = _raw_session(softhsm)
    return session, session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)


def test_token_digests_equal_the_file_backend(imported: Pkcs11KeyBackend) -> None:
    for canonical in CANONICALS:
        by_token = KeyedHasher(imported, SALT, TEST).digest(canonical)
        assert by_token == KeyedHasher(PEPPER, SALT, TEST).digest(canonical)
        assert by_token != KeyedHasher(OTHER_PEPPER, SALT, TEST).digest(canonical)
    assert key_check_value(imported) == key_check_value(PEPPER)
    assert derive_subkey(imported, "rate-limit/network") == derive_subkey(
        PEPPER, "rate-limit/network"
    )


def test_operations_are_counted(imported: Pkcs11KeyBackend) -> None:
    before = imported.operations
    hasher = KeyedHasher(imported, SALT, TEST)
    for canonical in CANONICALS:
        hasher.digest(canonical)
    key_check_value(imported)
    assert imported.operations == before + 3


@pytest.mark.parametrize("make", ["generate", "import"])
def test_the_key_cannot_be_read_out_of_the_token(softhsm: SoftHsm, make: str) -> None:
    config = softhsm.config(softhsm.new_label())
    if make == "generate":
        generate_key(config)
    else:
        import_key(config, PEPPER)
    session, key = _raw_key(softhsm, config.key_label)
    try:
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
    finally:
        session.close()
    destroy_key(config)


def test_a_generated_key_is_a_new_random_key(softhsm: SoftHsm) -> None:
    config = softhsm.config(softhsm.new_label())
    generate_key(config)
    backend = Pkcs11KeyBackend(config)
    try:
        value = key_check_value(backend)
        assert value not in (key_check_value(PEPPER), key_check_value(OTHER_PEPPER))
    finally:
        backend.close()
        destroy_key(config)


def test_a_second_key_under_the_same_label_is_refused(softhsm: SoftHsm) -> None:
    config = softhsm.config(softhsm.new_label())
    import_key(config, PEPPER)
    with pytest.raises(KeyBackendError, match="already holds"):
        generate_key(config)
    with pytest.raises(KeyBackendError, match="already holds"):
        import_key(config, OTHER_PEPPER)
    destroy_key(config)


def test_an_extractable_key_is_refused(softhsm: SoftHsm) -> None:
    label = softhsm.new_label()
    session = _raw_session(softhsm)
    try:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.LABEL: label,
                Attribute.TOKEN: True,
                Attribute.VALUE: PEPPER,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.SIGN: True,
            }
        )
    finally:
        session.close()
    with pytest.raises(KeyBackendError, match="extractable"):
        Pkcs11KeyBackend(softhsm.config(label))
    destroy_key(softhsm.config(label))


def test_after_destroy_the_key_is_gone(softhsm: SoftHsm) -> None:
    config = softhsm.config(softhsm.new_label())
    import_key(config, PEPPER)
    assert destroy_key(config) == 1
    with pytest.raises(KeyBackendError, match="no key labelled"):
        Pkcs11KeyBackend(config)
    with pytest.raises(KeyBackendError, match="no key labelled"):
        destroy_key(config)


def test_wrong_pin_unknown_token_and_library_are_one_line_errors(softhsm: SoftHsm) -> None:
    import dataclasses

    config = softhsm.config(softhsm.new_label())
    cases = [
        (dataclasses.replace(config, token_label="absent"), "no PKCS#11 token"),  # noqa: S106
        (dataclasses.replace(config, library=softhsm.conf.parent / "nope.so"), "cannot load"),
    ]
    for bad, message in cases:
        with pytest.raises(KeyBackendError, match=message) as caught:
            Pkcs11KeyBackend(bad)
        assert "\n" not in str(caught.value)
        assert softhsm.pin not in str(caught.value)


def test_pin_file(tmp_path: Any, softhsm: SoftHsm) -> None:
    assert read_pin_file(softhsm.pin_file) == softhsm.pin
    with pytest.raises(KeyBackendError, match="not found"):
        read_pin_file(tmp_path / "missing.pin")
    (tmp_path / "empty.pin").write_text("\n")
    with pytest.raises(KeyBackendError, match="empty"):
        read_pin_file(tmp_path / "empty.pin")


class _HungKey:
    """Fault injection: a key whose every operation blocks like a token that stopped answering."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def sign(self, *args: object, **kwargs: object) -> bytes:
        self.release.wait(30)
        raise DeviceError("released")


class _BrokenKey:
    def sign(self, *args: object, **kwargs: object) -> bytes:
        raise DeviceError("token removed")


def test_a_hung_token_raises_within_the_timeout(
    imported: Pkcs11KeyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    hung = _HungKey()
    monkeypatch.setattr(imported, "_key", hung)
    try:
        for _ in range(2):  # the second call queues behind the hung one: it fails too
            started = time.monotonic()
            with pytest.raises(KeyUnavailableError, match="did not answer"):
                KeyedHasher(imported, SALT, TEST).digest(CANONICALS[0])
            assert time.monotonic() - started < 1.0 + 2.0
    finally:
        hung.release.set()


def test_a_failing_token_raises_unavailable(
    imported: Pkcs11KeyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imported, "_key", _BrokenKey())
    with pytest.raises(KeyUnavailableError, match="DeviceError"):
        imported.hmac_sha256(b"x")


def test_repr_hides_the_key(imported: Pkcs11KeyBackend) -> None:
    assert "key=<hidden>" in repr(imported)
    assert PEPPER.hex() not in repr(imported)


def test_a_process_whose_token_hung_still_exits(softhsm: SoftHsm) -> None:
    """The token's thread is a daemon: a call stuck in the token never blocks the exit."""
    config = softhsm.config(softhsm.new_label(), timeout=0.3)
    import_key(config, PEPPER)
    code = f"""
import subprocess
import sys
import threading
from lookup_index.exceptions import KeyUnavailableError
from lookup_index.pkcs11_backend import Pkcs11Config, Pkcs11KeyBackend
from pathlib import Path

class Hung:
    def sign(self, *args, **kwargs):
        threading.Event().wait()

backend = Pkcs11KeyBackend(Pkcs11Config(Path({str(config.library)!r}), {config.token_label!r},
                                        {config.key_label!r}, {config.pin!r}, 0.3))
backend._key = Hung()
try:
    backend.hmac_sha256(b"x")
except KeyUnavailableError as exc:
    print("refused:", exc)
"""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
        )
    finally:
        destroy_key(config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused: the key token did not answer in time"
