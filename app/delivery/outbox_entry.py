"""One outbox entry: fixed size, sealed and authenticated with the outbox key.

Every valid query in private mode writes exactly one, hit or miss, with or without a
contact. Inside (only the outbox key opens it; Redis never holds that key)::

    version u8 | kind u8 | lang u8 | categories u8 | checked_at u64 (unix seconds)
    | binding key (32) | sealed contact (184)                      = 228 bytes

sealed with ChaCha20-Poly1305 under a key derived from the outbox key, a random
96-bit nonce, and the stream's name as associated data::

    nonce (12) | ciphertext (228) | tag (16)                      = 256 bytes

``kind`` is NOTHING for a miss or an index without contacts, DELIVER for a hit; a hit
whose sealed contact is a dummy opens to "no contact" in the sender, so only the sender
tells the three apart. The binding key alone opens nothing: the sealed contact also
needs the sender's private key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from lookup_index.sealed_contact import BINDING_KEY_SIZE, SEALED_CONTACT_SIZE

_INNER = struct.Struct("<BBBBQ")
_VERSION = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
INNER_SIZE = _INNER.size + BINDING_KEY_SIZE + SEALED_CONTACT_SIZE  # 228
ENTRY_SIZE = _NONCE_SIZE + INNER_SIZE + _TAG_SIZE  # 256
_KEY_LABEL = b"patient-breach-selfcheck/outbox-entry/v1"
_AAD_PREFIX = b"patient-breach-selfcheck/outbox/v1\0"
LANGS = ("fr", "en")


class Kind(IntEnum):
    NOTHING = 0
    DELIVER = 1


class ForgedEntry(Exception):
    """The entry does not open with the outbox key: forged, damaged or from another stream."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    kind: Kind
    lang: str
    categories: int
    checked_at: int
    binding: bytes
    sealed_contact: bytes

    def __repr__(self) -> str:
        return f"OutboxEntry(kind={self.kind.name}, lang={self.lang})"


class EntrySealer:
    """Seals and opens entries with the outbox key (API hosts seal, the sender opens)."""

    def __init__(self, outbox_key: bytes, stream: str) -> None:
        self._aead = ChaCha20Poly1305(hmac.new(outbox_key, _KEY_LABEL, hashlib.sha256).digest())
        self._aad = _AAD_PREFIX + stream.encode()

    def __repr__(self) -> str:
        return "EntrySealer(key=<hidden>)"

    def seal(self, entry: OutboxEntry) -> bytes:
        sealed = entry.sealed_contact or bytes(SEALED_CONTACT_SIZE)
        if len(entry.binding) != BINDING_KEY_SIZE or len(sealed) != SEALED_CONTACT_SIZE:
            raise ValueError("binding key or sealed contact of the wrong size")
        inner = (
            _INNER.pack(
                _VERSION,
                int(entry.kind),
                LANGS.index(entry.lang),
                entry.categories,
                entry.checked_at,
            )
            + entry.binding
            + sealed
        )
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, inner, self._aad)

    def open(self, data: bytes) -> OutboxEntry:
        if len(data) != ENTRY_SIZE:
            raise ForgedEntry("outbox entry has the wrong size")
        try:
            inner = self._aead.decrypt(data[:_NONCE_SIZE], data[_NONCE_SIZE:], self._aad)
        except InvalidTag:
            raise ForgedEntry("outbox entry fails authentication") from None
        version, kind, lang, categories, checked_at = _INNER.unpack_from(inner)
        if version != _VERSION or kind not in (0, 1) or lang >= len(LANGS):
            raise ForgedEntry("outbox entry is malformed")
        start = _INNER.size
        return OutboxEntry(
            kind=Kind(kind),
            lang=LANGS[lang],
            categories=categories,
            checked_at=checked_at,
            binding=inner[start : start + BINDING_KEY_SIZE],
            sealed_contact=inner[start + BINDING_KEY_SIZE :],
        )
