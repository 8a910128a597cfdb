"""Where the key lives: the one operation every keyed value needs, HMAC-SHA256 with it.

Two backends give the same HMACs for the same key material:

- ``file`` (:class:`FileKeyBackend`): the 32-byte pepper file, read into memory;
- ``pkcs11`` (:mod:`lookup_index.pkcs11_backend`): a non-extractable key inside a
  hardware security module, which computes the HMAC itself and never hands the key out.

Everything keyed (digests, the key-check value, subkeys) goes through
:meth:`KeyBackend.hmac_sha256`, so code never needs to know which backend it runs on.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from abc import ABC, abstractmethod
from typing import ClassVar


class KeyBackend(ABC):
    """HMAC-SHA256 with a key the caller may never see; counts the operations it runs."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._operations = 0
        self._count_lock = threading.Lock()

    @property
    def operations(self) -> int:
        """HMACs computed through this backend since it was opened (this process only)."""
        return self._operations

    def hmac_sha256(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 of ``message``; raises ``KeyUnavailableError`` on failure."""
        with self._count_lock:
            self._operations += 1
        return self._hmac(message)

    @abstractmethod
    def _hmac(self, message: bytes) -> bytes: ...

    @abstractmethod
    def close(self) -> None:
        """Release what the backend holds (a token session); idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key=<hidden>)"


class FileKeyBackend(KeyBackend):
    """The pepper in this process's memory (from a file, or bytes handed in by a test)."""

    name = "file"

    def __init__(self, pepper: bytes) -> None:
        super().__init__()
        self._pepper = pepper

    def _hmac(self, message: bytes) -> bytes:
        return hmac.new(self._pepper, message, hashlib.sha256).digest()

    def close(self) -> None:
        # Nothing to release: the pepper is plain process memory, freed with the object.
        return None


#: What keyed functions accept: a backend, or the raw pepper (wrapped in a file backend).
KeyMaterial = bytes | KeyBackend


def as_backend(key: KeyMaterial) -> KeyBackend:
    return FileKeyBackend(key) if isinstance(key, bytes) else key
