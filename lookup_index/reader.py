"""Memory-mapped, read-only access to an index; shared by every process that opens it."""

from __future__ import annotations

import hashlib
import hmac
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookup_index.categories import names_of
from lookup_index.exceptions import IndexChecksumError, IndexFormatError, KeyMismatchError
from lookup_index.index_format import (
    CHECKSUM_SIZE,
    SIGNATURE_MAGIC,
    DigestArray,
    IndexHeader,
    Layout,
    parse_preamble,
)
from lookup_index.key_backend import KeyMaterial
from lookup_index.keyed_hash import DIGEST_SIZE, KeyedHasher, key_check_value
from lookup_index.normalise import CANONICAL_VERSION
from lookup_index.sealed_contact import SEALED_CONTACT_FIELD, SEALED_CONTACT_SIZE
from lookup_index.signing import verify_trailer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class LookupResult:
    found: bool
    categories: tuple[str, ...]


class IndexReader:
    """An opened index. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, mapped: mmap.mmap, header: IndexHeader, layout: Layout) -> None:
        self.path = path
        self.header = header
        self._mm = mapped
        self._layout = layout
        self._digests: DigestArray = np.frombuffer(
            mapped, dtype=f"S{DIGEST_SIZE}", count=header.count, offset=layout.digests_offset
        )
        self._has_keys = header.count > 0
        self._value_size = layout.value_size
        # For an empty index slot 0 points into the checksum: readable, never "found".
        self._last_slot = max(header.count - 1, 0)
        #: The index seals a contact per key (private delivery, docs/INDEX_FORMAT.md).
        self.has_sealed_contacts = SEALED_CONTACT_FIELD in header.value_fields

    @classmethod
    def open(cls, path: Path, *, verify_checksum: bool = True) -> IndexReader:
        """Map ``path`` read-only and check magic, version, size and (optionally) checksum."""
        try:
            with path.open("rb") as handle:
                size = path.stat().st_size
                if size == 0:
                    raise IndexFormatError("index file is empty")
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise IndexFormatError(f"index file not found: {path}") from None
        except IsADirectoryError:
            raise IndexFormatError(f"index path is a directory: {path}") from None
        except PermissionError:
            raise IndexFormatError(f"index file is not readable: {path}") from None
        # An explicit view, released before any close: a failed parse leaves its traceback
        # (and so a view of the map) alive, and mmap.close() would then raise BufferError
        # instead of the IndexFormatError the caller expects.
        view = memoryview(mapped)
        try:
            header, layout = parse_preamble(view, size)
        except BaseException:
            view.release()
            mapped.close()
            raise
        view.release()
        try:
            reader = cls(path, mapped, header, layout)
        except BaseException:
            mapped.close()
            raise
        if verify_checksum:
            try:
                reader.verify_checksum()
            except BaseException:
                reader.close()
                raise
        return reader

    def verify_checksum(self) -> None:
        end = self._layout.checksum_offset
        view = memoryview(self._mm)
        try:
            actual = hashlib.sha256(view[:end]).digest()
            expected = bytes(view[end : end + CHECKSUM_SIZE])
        finally:
            view.release()
        if not hmac.compare_digest(actual, expected):
            raise IndexChecksumError(f"index checksum mismatch: {self.path} is corrupt")

    @property
    def checksum_hex(self) -> str:
        """The file's SHA-256 as stored (names this exact file, e.g. a version 1 index)."""
        end = self._layout.checksum_offset
        return bytes(self._mm[end : end + CHECKSUM_SIZE]).hex()

    def check_pepper(self, key: KeyMaterial) -> None:
        if not hmac.compare_digest(key_check_value(key), self.header.key_check):
            raise KeyMismatchError("the key file does not match this index (key-check failed)")

    def check_identity_rules(self) -> None:
        """Refuse an index made with other identity rules: its keys would miss some names."""
        if self.header.canonical != CANONICAL_VERSION:
            raise IndexFormatError(
                f"index built with identity rules {self.header.canonical}, this version "
                f"hashes {CANONICAL_VERSION}: rebuild it with this lookup-index"
            )

    def hasher(self, key: KeyMaterial) -> KeyedHasher:
        """A hasher for this index's salt and profile, after checking the key and rules."""
        self.check_pepper(key)
        self.check_identity_rules()
        return KeyedHasher(key, self.header.salt, self.header.profile)

    def lookup_mask(self, digest: bytes) -> tuple[bool, int]:
        """(found, categories bitmask). A hit and a miss do exactly the same work."""
        # searchsorted is a binary search whose step count depends only on the count;
        # then one constant-time compare and one byte read (byte 0 of a fixed-stride value),
        # hit or miss.
        slot = min(int(self._digests.searchsorted(digest)), self._last_slot)
        start = self._layout.digests_offset + slot * DIGEST_SIZE
        found = (
            hmac.compare_digest(self._mm[start : start + DIGEST_SIZE], digest) and self._has_keys
        )
        return found, self._mm[self._layout.values_offset + slot * self._value_size] * found

    def lookup_with_contact(self, digest: bytes) -> tuple[bool, int, bytes]:
        """(found, categories bitmask, sealed contact). The same work for a hit and a miss:
        the sealed contact of a miss is zero bytes; without contacts in the index, b""."""
        found, mask = self.lookup_mask(digest)
        if not self.has_sealed_contacts:
            return found, mask, b""
        slot = min(int(self._digests.searchsorted(digest)), self._last_slot)
        start = self._layout.values_offset + slot * self._value_size + 1
        sealed = self._mm[start : start + SEALED_CONTACT_SIZE]
        if len(sealed) != SEALED_CONTACT_SIZE or not found:
            sealed = bytes(SEALED_CONTACT_SIZE)
        return found, mask, sealed

    def lookup(self, digest: bytes) -> LookupResult:
        found, mask = self.lookup_mask(digest)
        return LookupResult(found, tuple(names_of(mask, self.header.categories)))

    def info(self) -> dict[str, Any]:
        data = self.header.to_json()
        data["file_size"] = self._layout.file_size
        data["params_id"] = self.header.params_id
        data["signature"] = self._signature_info()
        data["path"] = str(self.path)
        return data

    @property
    def signed(self) -> bool:
        return bool(self._layout.trailer_size)

    def verify_signature(self, public_key: Ed25519PublicKey) -> None:
        """Refuse unless signed by ``public_key`` over this file's (verified) checksum."""
        end = self._layout.checksum_offset
        checksum = bytes(self._mm[end : end + CHECKSUM_SIZE])
        trailer = bytes(self._mm[end + CHECKSUM_SIZE : self._layout.file_size]) or None
        verify_trailer(trailer, checksum, public_key)

    def _signature_info(self) -> dict[str, Any]:
        # Reported, not verified: verify --public-key checks it against a pinned key.
        if not self._layout.trailer_size:
            return {"present": False}
        start = self._layout.checksum_offset + CHECKSUM_SIZE + len(SIGNATURE_MAGIC)
        public_key = bytes(self._mm[start : start + 32])
        return {"present": True, "public_key": public_key.hex(), "verified": False}

    def close(self) -> None:
        if self._mm.closed:
            return
        # The numpy view holds a buffer export on the mmap; drop it before closing.
        del self._digests
        self._mm.close()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
