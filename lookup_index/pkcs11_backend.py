"""The ``pkcs11`` key backend: the pepper is a non-extractable key inside an HSM.

The token computes HMAC-SHA256 itself (``CKM_SHA256_HMAC``); this process holds a
session and a key handle, never the key. Any PKCS#11 library works: SoftHSM2 for
tests and trials, a network HSM or a cloud KMS's PKCS#11 library in production.

Every token call runs on one thread per token and is waited for at most
``timeout`` seconds: a token that errors or hangs raises
:class:`KeyUnavailableError` (the API's uniform 503), never a wrong answer.
PKCS#11 sessions are not meant for concurrent operations, so that one thread also
serialises them; one HMAC costs microseconds next to Argon2's milliseconds.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PKCS11Error, UserAlreadyLoggedIn

from lookup_index.exceptions import KeyBackendError, KeyUnavailableError
from lookup_index.key_backend import KeyBackend
from lookup_index.pepper import PEPPER_SIZE

T = TypeVar("T")
DEFAULT_TIMEOUT = 2.0
#: Where Debian's softhsm2 package installs its PKCS#11 library.
SOFTHSM2_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    """Where the key is: library, token and key labels, and the user PIN (read from a file)."""

    library: Path
    token_label: str
    key_label: str
    pin: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT


def read_pin_file(path: Path) -> str:
    """A PIN from a secret file (never from an environment value); trailing newline ignored."""
    try:
        pin = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise KeyBackendError(f"PIN file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyBackendError(f"cannot read PIN file {path}: {type(exc).__name__}") from None
    if not pin:
        raise KeyBackendError(f"PIN file {path} is empty")
    return pin


def _key_template(label: str) -> dict[Attribute, Any]:
    # A token object (persistent), private (needs the PIN), sensitive and never extractable:
    # the token signs with it and refuses to hand out CKA_VALUE, even wrapped.
    return {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
        Attribute.LABEL: label,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.DECRYPT: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }


class _TokenThread:
    """One daemon thread running token calls in order.

    Not a ThreadPoolExecutor: the interpreter joins those at exit, so a token hung in a
    C call would keep a finished CLI or a stopping server alive for ever.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._run, name="pkcs11", daemon=True).start()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((call, future))
        return future

    def shutdown(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future = job
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting before it started
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)


class _TokenSession:
    """One logged-in session per (library, token) in this process, shared by every user.

    PKCS#11 login state belongs to the application, not the session: a second login
    fails and any logout logs every session out, so users share one and the last closes it.
    """

    _open: dict[tuple[str, str], _TokenSession] = {}  # noqa: RUF012 - process-wide registry
    _registry_lock = threading.Lock()

    def __init__(self, config: Pkcs11Config) -> None:
        self.key_of = (str(config.library), config.token_label)
        self.users = 0
        try:
            lib = pkcs11.lib(str(config.library))
            self.token = lib.get_token(token_label=config.token_label)
        except NoSuchToken:
            raise KeyBackendError(f"no PKCS#11 token labelled {config.token_label!r}") from None
        except (PKCS11Error, OSError) as exc:
            raise KeyBackendError(
                f"cannot load PKCS#11 library {config.library}: {type(exc).__name__}"
            ) from None
        try:
            self.session = self.token.open(user_pin=config.pin, rw=True)
        except UserAlreadyLoggedIn:
            # Logged in by another library user in this process (e.g. a test harness).
            self.session = self.token.open(rw=True)
        except PKCS11Error as exc:
            raise KeyBackendError(
                f"cannot log in to token {config.token_label!r}: {type(exc).__name__}"
            ) from None
        self.executor = _TokenThread()

    @property
    def software(self) -> bool:
        return "softhsm" in f"{self.token.manufacturer_id} {self.token.model}".lower()

    @classmethod
    def acquire(cls, config: Pkcs11Config) -> _TokenSession:
        with cls._registry_lock:
            key = (str(config.library), config.token_label)
            shared = cls._open.get(key)
            if shared is None:
                shared = cls._open[key] = cls(config)
            shared.users += 1
            return shared

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            del self._open[self.key_of]
        self.executor.shutdown()
        # The token may be gone or hung up: then there is nothing left to release on our side.
        with contextlib.suppress(PKCS11Error):
            self.session.close()

    def run(self, call: Callable[[], T], timeout: float) -> T:
        """``call()`` on the token's thread, or ``KeyUnavailableError`` after ``timeout``."""
        future: Future[T] = self.executor.submit(call)
        try:
            return future.result(timeout)
        except FutureTimeout:
            # A hung call keeps the thread; later calls queue behind it and time out too.
            future.cancel()
            raise KeyUnavailableError("the key token did not answer in time") from None
        except PKCS11Error as exc:
            raise KeyUnavailableError(f"the key token failed: {type(exc).__name__}") from None


class Pkcs11KeyBackend(KeyBackend):
    """HMAC-SHA256 computed inside the token with the key labelled ``config.key_label``."""

    name = "pkcs11"

    def __init__(self, config: Pkcs11Config) -> None:
        super().__init__()
        self._config = config
        self._token = _TokenSession.acquire(config)
        try:
            self._key = self._token.run(self._find_key, config.timeout)
        except BaseException:
            self._token.release()
            raise
        self._closed = False

    def _find_key(self) -> Any:
        try:
            key = self._token.session.get_key(
                object_class=ObjectClass.SECRET_KEY, label=self._config.key_label
            )
        except NoSuchKey:
            raise KeyBackendError(
                f"no key labelled {self._config.key_label!r} in token {self._config.token_label!r}"
            ) from None
        if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            # Such a key could be read out of the token: it protects no more than a file.
            raise KeyBackendError(
                f"key {self._config.key_label!r} is extractable or not sensitive; "
                "generate or import it with lookup-index"
            )
        return key

    @property
    def software_token(self) -> bool:
        """True for SoftHSM2, whose "token" is files on this host: no more than a key file."""
        return self._token.software

    def _hmac(self, message: bytes) -> bytes:
        if self._closed:
            raise KeyUnavailableError("the key backend is closed")
        key = self._key
        result: bytes = self._token.run(
            lambda: key.sign(message, mechanism=Mechanism.SHA256_HMAC), self._config.timeout
        )
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._token.release()


def _with_session(config: Pkcs11Config, action: Callable[[Any], T]) -> T:
    token = _TokenSession.acquire(config)
    try:
        return token.run(lambda: action(token.session), config.timeout)
    finally:
        token.release()


def _refuse_existing(session: Any, config: Pkcs11Config) -> None:
    if list(session.get_objects({Attribute.LABEL: config.key_label})):
        raise KeyBackendError(
            f"token {config.token_label!r} already holds an object labelled "
            f"{config.key_label!r}; refusing to create a second one"
        )


def generate_key(config: Pkcs11Config) -> None:
    """Generate a new 32-byte HMAC key inside the token; it never exists outside it."""

    def generate(session: Any) -> None:
        _refuse_existing(session, config)
        session.generate_key(
            KeyType.GENERIC_SECRET,
            PEPPER_SIZE * 8,
            mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
            template=_key_template(config.key_label),
        )

    _with_session(config, generate)


def import_key(config: Pkcs11Config, pepper: bytes) -> None:
    """Put an existing pepper into the token as a non-extractable key (same digests after)."""

    def create(session: Any) -> None:
        _refuse_existing(session, config)
        template = _key_template(config.key_label)
        template[Attribute.VALUE] = pepper
        session.create_object(template)

    _with_session(config, create)


def destroy_key(config: Pkcs11Config) -> int:
    """Destroy every object labelled ``config.key_label`` in the token; returns how many."""

    def destroy(session: Any) -> int:
        objects = list(session.get_objects({Attribute.LABEL: config.key_label}))
        if not objects:
            raise KeyBackendError(
                f"no key labelled {config.key_label!r} in token {config.token_label!r}"
            )
        for obj in objects:
            obj.destroy()
        return len(objects)

    return _with_session(config, destroy)
