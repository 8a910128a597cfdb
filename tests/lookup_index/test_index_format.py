"""The on-disk format: layout, checksum, atomic write, header validation."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from lookup_index.categories import CATEGORIES
from lookup_index.exceptions import IndexFormatError
from lookup_index.index_format import (
    CHECKSUM_SIZE,
    FORMAT_VERSION,
    MAGIC,
    encode_header,
    layout_for,
    parse_preamble,
    write_index,
)
from lookup_index.reader import IndexReader
from tests.lookup_index.helpers import PEPPER, leftovers, make_header, random_arrays


@pytest.mark.parametrize("count", [0, 1, 7, 1000])
def test_layout_is_aligned_and_17_bytes_per_key(tmp_path: Path, count: int) -> None:
    digests, values = random_arrays(count)
    header = make_header(count)
    path = tmp_path / "i.bin"
    size = write_index(path, header, digests, values)
    data = path.read_bytes()
    layout = layout_for(len(encode_header(header)), count)
    assert size == len(data) == layout.file_size
    assert layout.digests_offset % 64 == 0
    assert layout.file_size == layout.digests_offset + 17 * count + CHECKSUM_SIZE
    magic, version, header_length = struct.unpack_from("<8sII", data)
    assert (magic, version) == (MAGIC, FORMAT_VERSION)
    assert json.loads(data[16 : 16 + header_length]) == header.to_json()
    assert data[16 + header_length : layout.digests_offset].strip(b"\0") == b""
    assert data[layout.digests_offset : layout.values_offset] == digests.tobytes()
    assert data[layout.values_offset : layout.checksum_offset] == values.tobytes()
    assert data[-CHECKSUM_SIZE:] == hashlib.sha256(data[:-CHECKSUM_SIZE]).digest()


def test_header_round_trip_and_no_pepper(tmp_path: Path) -> None:
    digests, values = random_arrays(10)
    header = make_header(10, categories=tuple(reversed(CATEGORIES)))
    path = tmp_path / "i.bin"
    write_index(path, header, digests, values)
    with IndexReader.open(path) as reader:
        assert reader.header == header
        info = reader.info()
    assert info["count"] == 10
    assert info["file_size"] == path.stat().st_size
    data = path.read_bytes()
    assert PEPPER not in data
    assert PEPPER.hex().encode() not in data


def test_written_file_is_world_readable_not_writable(tmp_path: Path) -> None:
    # The API runs as another user than the builder; it needs read access only.
    path = tmp_path / "i.bin"
    write_index(path, make_header(1), *random_arrays(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("digests", "values", "error"),
    [
        (np.zeros(2, dtype="S8"), np.zeros(2, np.uint8), TypeError),
        (np.zeros(2, dtype="S16"), np.zeros(2, np.uint16), TypeError),
        (np.zeros(3, dtype="S16"), np.zeros(2, np.uint8), ValueError),
        (np.zeros(2, dtype="S16"), np.zeros(3, np.uint8), ValueError),
    ],
)
def test_write_refuses_mismatched_arrays(
    tmp_path: Path, digests: np.ndarray, values: np.ndarray, error: type[Exception]
) -> None:
    with pytest.raises(error):
        write_index(tmp_path / "i.bin", make_header(2), digests, values)
    assert leftovers(tmp_path) == []


def test_replacing_an_index_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "i.bin"
    write_index(path, make_header(3), *random_arrays(3, seed=1))
    before = path.read_bytes()

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    # A crash at the last step: the old index must survive and no temporary file remain.
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        write_index(path, make_header(5), *random_arrays(5, seed=2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, keep=[path]) == []

    write_index(path, make_header(5), *random_arrays(5, seed=2))
    assert path.read_bytes() != before
    assert leftovers(tmp_path, keep=[path]) == []


def _rewrite_header(path: Path, edit: dict[str, object] | list[object]) -> None:
    """Replace the JSON header while keeping the file's length and layout."""
    data = bytearray(path.read_bytes())
    _, _, length = struct.unpack_from("<8sII", data)
    if isinstance(edit, dict):
        edit = edit | {"created_at": ""}  # frees room for the edited field
    encoded = json.dumps(edit, separators=(",", ":")).encode()
    assert len(encoded) <= length
    data[16 : 16 + length] = encoded.ljust(length, b" ")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest_size": 32}, "unsupported digest or value size"),
        ({"value_size": 2}, "unsupported digest or value size"),
        ({"salt": "not hex"}, "malformed"),
        ({"count": [2]}, "malformed"),
        ({"count": "two"}, "malformed"),
        ({"profile": "fast"}, "malformed"),
        ({"incident": None}, "malformed"),
    ],
)
def test_malformed_header_fields(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = tmp_path / "i.bin"
    header = make_header(2)
    write_index(path, header, *random_arrays(2))
    _rewrite_header(path, header.to_json() | change)
    with pytest.raises(IndexFormatError, match=message):
        IndexReader.open(path, verify_checksum=False)


def test_header_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    write_index(path, make_header(2), *random_arrays(2))
    _rewrite_header(path, [1, 2])
    with pytest.raises(IndexFormatError, match="malformed"):
        IndexReader.open(path, verify_checksum=False)


def test_missing_header_field(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    header = make_header(2)
    write_index(path, header, *random_arrays(2))
    data = header.to_json()
    del data["key_check"]
    _rewrite_header(path, data)
    with pytest.raises(IndexFormatError, match="malformed"):
        IndexReader.open(path, verify_checksum=False)


def test_future_format_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    write_index(path, make_header(2), *random_arrays(2))
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, FORMAT_VERSION + 1)
    with pytest.raises(
        IndexFormatError, match=f"unsupported index format version {FORMAT_VERSION + 1}"
    ):
        parse_preamble(bytes(data), len(data))
