"""The on-disk index: one file, written atomically, read through mmap.

Layout (all offsets from the start of the file)::

    0        magic  b"PBSCIDX\\n"                 8 bytes
    8        format version, uint32 little-endian
    12       header length H, uint32 little-endian
    16       header: UTF-8 JSON, H bytes, zero-padded to a 64-byte boundary
    D        digests: count x 16 bytes, sorted ascending (bytewise), unique
    D+16n    values: count x 1 byte, bitmask of exposed categories
    end-32   SHA-256 of every byte before it

The JSON header holds the Argon2 profile, salt, key-check value, counts,
incident metadata and the categories vocabulary; no plaintext identity, no
pepper. 17 bytes per key plus a constant.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookup_index.exceptions import IndexFormatError
from lookup_index.keyed_hash import DIGEST_SIZE
from lookup_index.profiles import Argon2Profile, profile_from_header

MAGIC = b"PBSCIDX\n"
FORMAT_VERSION = 1
VALUE_SIZE = 1
CHECKSUM_SIZE = 32
_PREAMBLE = struct.Struct("<8sII")
_ALIGN = 64

DigestArray = npt.NDArray[np.bytes_]
ValueArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class IndexHeader:
    """Everything about an index except its keys."""

    profile: Argon2Profile
    salt: bytes
    key_check: bytes
    count: int
    incident_id: str
    incident_label: str
    incident_categories: tuple[str, ...]
    categories: tuple[str, ...]
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "profile": self.profile.as_dict(),
            "salt": self.salt.hex(),
            "key_check": self.key_check.hex(),
            "count": self.count,
            "digest_size": DIGEST_SIZE,
            "value_size": VALUE_SIZE,
            "incident": {
                "id": self.incident_id,
                "label": self.incident_label,
                "categories": list(self.incident_categories),
            },
            "categories": list(self.categories),
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexHeader:
        try:
            if data["digest_size"] != DIGEST_SIZE or data["value_size"] != VALUE_SIZE:
                raise IndexFormatError("index uses an unsupported digest or value size")
            incident = data["incident"]
            return cls(
                profile=profile_from_header(data["profile"]),
                salt=bytes.fromhex(data["salt"]),
                key_check=bytes.fromhex(data["key_check"]),
                count=int(data["count"]),
                incident_id=str(incident["id"]),
                incident_label=str(incident["label"]),
                incident_categories=tuple(str(c) for c in incident["categories"]),
                categories=tuple(str(c) for c in data["categories"]),
                created_at=str(data["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"index header is malformed ({type(exc).__name__})") from None


@dataclass(frozen=True, slots=True)
class Layout:
    """Byte offsets of an index's sections."""

    digests_offset: int
    values_offset: int
    checksum_offset: int

    @property
    def file_size(self) -> int:
        return self.checksum_offset + CHECKSUM_SIZE


def layout_for(header_length: int, count: int) -> Layout:
    digests = -(-(_PREAMBLE.size + header_length) // _ALIGN) * _ALIGN
    values = digests + count * DIGEST_SIZE
    return Layout(digests, values, values + count * VALUE_SIZE)


def encode_header(header: IndexHeader) -> bytes:
    return json.dumps(header.to_json(), sort_keys=True, separators=(",", ":")).encode()


def parse_preamble(buffer: bytes | memoryview, file_size: int) -> tuple[IndexHeader, Layout]:
    """Check magic and version, decode the header and check the file size matches it."""
    if file_size < _PREAMBLE.size + CHECKSUM_SIZE:
        raise IndexFormatError("file is too short to be an index")
    magic, version, header_length = _PREAMBLE.unpack_from(buffer, 0)
    if magic != MAGIC:
        raise IndexFormatError("not an index file (bad magic)")
    if version != FORMAT_VERSION:
        raise IndexFormatError(f"unsupported index format version {version}")
    raw = bytes(buffer[_PREAMBLE.size : _PREAMBLE.size + header_length])
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IndexFormatError("index header is not valid JSON (corrupt file)") from None
    if not isinstance(data, dict):
        raise IndexFormatError("index header is malformed")
    header = IndexHeader.from_json(data)
    layout = layout_for(header_length, header.count)
    if layout.file_size != file_size:
        raise IndexFormatError("index size does not match its header (truncated or corrupt)")
    return header, layout


def write_index(path: Path, header: IndexHeader, digests: DigestArray, values: ValueArray) -> int:
    """Write an index atomically (temporary file + rename); returns its size in bytes."""
    if digests.dtype != np.dtype(f"S{DIGEST_SIZE}") or values.dtype != np.uint8:
        raise TypeError("digests must be S16 and values uint8")
    if len(digests) != header.count or len(values) != header.count:
        raise ValueError("header count does not match the arrays")
    if len(digests) > 1 and not bool(np.all(digests[1:] > digests[:-1])):
        raise ValueError("digests must be sorted and unique: a reader would miss keys")
    encoded = encode_header(header)
    layout = layout_for(len(encoded), header.count)
    checksum = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(encoded)) + encoded
            preamble += b"\0" * (layout.digests_offset - len(preamble))
            for chunk in (preamble, digests.tobytes(), values.tobytes()):
                checksum.update(chunk)
                out.write(chunk)
            out.write(checksum.digest())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return layout.file_size
