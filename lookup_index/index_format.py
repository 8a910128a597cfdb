"""The on-disk index: one file, written atomically, read through mmap.

Layout (all offsets from the start of the file)::

    0        magic  b"PBSCIDX\\n"                 8 bytes
    8        format version, uint32 little-endian
    12       header length H, uint32 little-endian
    16       header: UTF-8 JSON, H bytes, zero-padded to a 64-byte boundary
    D        digests: count x 16 bytes, sorted ascending (bytewise), unique
    D+16n    values: count x V bytes (V = header "value_size"; byte 0 = categories bitmask)
    C        SHA-256 of every byte before it
    C+32     version 2 only, optional: signature trailer (docs/INDEX_FORMAT.md)

The JSON header holds the build manifest (build id, Argon2 profile, salt,
params id, key-check value), counts, incident metadata and the categories
vocabulary; no plaintext identity, no pepper. 16 + V bytes per key plus a
constant. docs/INDEX_FORMAT.md is the full description, versions 1 and 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookup_index.exceptions import IndexFormatError
from lookup_index.index_header import FORMAT_VERSION, SUPPORTED_VERSIONS, IndexHeader
from lookup_index.keyed_hash import DIGEST_SIZE

__all__ = [
    "CHECKSUM_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "SIGNATURE_MAGIC",
    "SIGNATURE_TRAILER_SIZE",
    "DigestArray",
    "IndexHeader",
    "Layout",
    "ValueArray",
    "encode_header",
    "layout_for",
    "parse_preamble",
    "write_index",
]

MAGIC = b"PBSCIDX\n"
CHECKSUM_SIZE = 32
#: Optional in version 2: appended after the checksum by the signing step, off the API hosts.
SIGNATURE_MAGIC = b"PBSCSIG\n"
SIGNATURE_TRAILER_SIZE = len(SIGNATURE_MAGIC) + 32 + 64
_PREAMBLE = struct.Struct("<8sII")
_ALIGN = 64

DigestArray = npt.NDArray[np.bytes_]
ValueArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Layout:
    """Byte offsets of an index's sections."""

    digests_offset: int
    values_offset: int
    value_size: int
    checksum_offset: int
    #: Bytes after the checksum: 0, or a version 2 signature trailer.
    trailer_size: int = 0

    @property
    def file_size(self) -> int:
        return self.checksum_offset + CHECKSUM_SIZE + self.trailer_size


def layout_for(header_length: int, count: int, value_size: int = 1) -> Layout:
    digests = -(-(_PREAMBLE.size + header_length) // _ALIGN) * _ALIGN
    values = digests + count * DIGEST_SIZE
    return Layout(digests, values, value_size, values + count * value_size)


def encode_header(header: IndexHeader) -> bytes:
    return json.dumps(header.to_json(), sort_keys=True, separators=(",", ":")).encode()


def parse_preamble(buffer: bytes | memoryview, file_size: int) -> tuple[IndexHeader, Layout]:
    """Check magic and version, decode the header and check the file size matches it."""
    if file_size < _PREAMBLE.size + CHECKSUM_SIZE:
        raise IndexFormatError("file is too short to be an index")
    magic, version, header_length = _PREAMBLE.unpack_from(buffer, 0)
    if magic != MAGIC:
        raise IndexFormatError("not an index file (bad magic)")
    if version not in SUPPORTED_VERSIONS:
        raise IndexFormatError(f"unsupported index format version {version}")
    raw = bytes(buffer[_PREAMBLE.size : _PREAMBLE.size + header_length])
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IndexFormatError("index header is not valid JSON (corrupt file)") from None
    if not isinstance(data, dict):
        raise IndexFormatError("index header is malformed")
    if data.get("format_version") != version:
        raise IndexFormatError("index header disagrees with the file's format version")
    header = IndexHeader.from_json(data, version)
    layout = layout_for(header_length, header.count, header.value_size)
    if version >= 2 and file_size == layout.file_size + SIGNATURE_TRAILER_SIZE:
        start = layout.file_size
        if bytes(buffer[start : start + len(SIGNATURE_MAGIC)]) != SIGNATURE_MAGIC:
            raise IndexFormatError("index has trailing bytes that are not a signature")
        layout = replace(layout, trailer_size=SIGNATURE_TRAILER_SIZE)
    if layout.file_size != file_size:
        raise IndexFormatError("index size does not match its header (truncated or corrupt)")
    return header, layout


def write_index(
    path: Path,
    header: IndexHeader,
    digests: DigestArray,
    values: ValueArray,
    sign: Callable[[bytes], bytes] | None = None,
) -> int:
    """Write an index atomically (temporary file + rename); returns its size in bytes.

    ``values`` is one uint8 per key, or a (count, value_size) uint8 array. ``sign`` maps
    the checksum to a signature trailer, written before the rename like everything else.
    """
    if digests.dtype != np.dtype(f"S{DIGEST_SIZE}") or values.dtype != np.uint8:
        raise TypeError("digests must be S16 and values uint8")
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if len(digests) != header.count or values.shape != (header.count, header.value_size):
        raise ValueError("header count or value size does not match the arrays")
    if header.format_version == 1 and header.value_size != 1:
        raise ValueError("format version 1 holds one value byte per key")
    if len(digests) > 1 and not bool(np.all(digests[1:] > digests[:-1])):
        raise ValueError("digests must be sorted and unique: a reader would miss keys")
    encoded = encode_header(header)
    # Decoded as a reader will: never write a file that readers refuse.
    IndexHeader.from_json(json.loads(encoded), header.format_version)
    layout = layout_for(len(encoded), header.count, header.value_size)
    checksum = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            preamble = _PREAMBLE.pack(MAGIC, header.format_version, len(encoded)) + encoded
            preamble += b"\0" * (layout.digests_offset - len(preamble))
            body = (preamble, digests.tobytes(), np.ascontiguousarray(values).tobytes())
            for chunk in body:
                checksum.update(chunk)
                out.write(chunk)
            out.write(checksum.digest())
            trailer = b"" if sign is None else sign(checksum.digest())
            if trailer and (header.format_version < 2 or len(trailer) != SIGNATURE_TRAILER_SIZE):
                raise ValueError("a signature trailer needs format version 2 and 104 bytes")
            out.write(trailer)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return layout.file_size + len(trailer)
