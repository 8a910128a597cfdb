"""The reader: exact lookups over the mapped file, and refusal of anything corrupt or foreign."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lookup_index.categories import CATEGORIES
from lookup_index.exceptions import IndexChecksumError, IndexFormatError, KeyMismatchError
from lookup_index.index_format import encode_header, layout_for, write_index
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.reader import IndexReader, LookupResult
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER, make_header, random_arrays

digests_16 = st.binary(min_size=16, max_size=16)


def write(path: Path, entries: dict[bytes, int], **header: object) -> Path:
    digests = np.array(sorted(entries), dtype="S16")
    values = np.array([entries[d] for d in sorted(entries)], dtype=np.uint8)
    write_index(path, make_header(len(entries), **header), digests, values)
    return path


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(digests_16, st.integers(0, 255), max_size=40),
    st.lists(digests_16, max_size=20),
)
# numpy's fixed-width bytes drop trailing NULs when they read an element back; a digest
# ending in zero bytes, or one that is a prefix of another, must still be found exactly.
@example({b"\x00" * 16: 3, b"\xff" * 16: 5, b"a" * 15 + b"\x00": 7, b"a" * 15 + b"\x01": 9}, [])
@example({b"a" * 15 + b"\x01": 9}, [b"a" * 15 + b"\x00", b"a" * 14 + b"\x00\x00", b"\x00" * 16])
def test_every_key_found_with_its_value_and_nothing_else(
    entries: dict[bytes, int], others: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory) / "i.bin", entries)
        with IndexReader.open(path) as reader:
            for digest, value in entries.items():
                assert reader.lookup_mask(digest) == (True, value)
            for digest in others:
                if digest not in entries:
                    # A miss reports no categories even when its neighbour slot has some.
                    assert reader.lookup_mask(digest) == (False, 0)


def test_lookup_decodes_categories_with_the_headers_vocabulary(tmp_path: Path) -> None:
    # The header's vocabulary wins over the module constant, so an index stays readable
    # if the constant is ever reordered.
    vocabulary = tuple(reversed(CATEGORIES))
    path = write(tmp_path / "i.bin", {b"k" * 16: 0b101}, categories=vocabulary)
    with IndexReader.open(path) as reader:
        assert reader.lookup(b"k" * 16) == LookupResult(True, (vocabulary[0], vocabulary[2]))
        assert reader.lookup(b"j" * 16) == LookupResult(False, ())


def test_empty_index_finds_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "i.bin", {})
    with IndexReader.open(path) as reader:
        assert reader.lookup_mask(bytes(16)) == (False, 0)
        assert reader.lookup(b"\xff" * 16) == LookupResult(False, ())


def test_pepper_check_and_hasher(tmp_path: Path) -> None:
    path = write(tmp_path / "i.bin", {b"k" * 16: 1})
    with IndexReader.open(path) as reader:
        reader.check_pepper(PEPPER)
        with pytest.raises(KeyMismatchError):
            reader.check_pepper(OTHER_PEPPER)
        with pytest.raises(KeyMismatchError):
            reader.hasher(OTHER_PEPPER)
        # The hasher uses the salt and parameters stored in the header.
        header = reader.header
        expected = KeyedHasher(PEPPER, header.salt, header.profile).digest(b"x")
        assert reader.hasher(PEPPER).digest(b"x") == expected


def test_info_has_no_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "i.bin", {b"k" * 16: 1})
    with IndexReader.open(path) as reader:
        info = reader.info()
    assert info["count"] == 1
    assert info["path"] == str(path)
    text = repr(info)
    assert PEPPER.hex() not in text
    assert repr(PEPPER)[2:-1] not in text


# --- corruption ---------------------------------------------------------------------------


@pytest.fixture
def small_index(tmp_path: Path) -> tuple[Path, bytes, int]:
    """A 20-key index, its bytes and the offset where the digests start."""
    digests, values = random_arrays(20, seed=3)
    header = make_header(20)
    path = tmp_path / "i.bin"
    write_index(path, header, digests, values)
    return path, path.read_bytes(), layout_for(len(encode_header(header)), 20).digests_offset


def test_every_single_byte_flip_is_refused(small_index: tuple[Path, bytes, int]) -> None:
    path, data, digests_offset = small_index
    # Flipped in place and restored: rewriting the whole file each time is 20x slower.
    fd = os.open(path, os.O_RDWR)
    try:
        for offset in range(len(data)):
            for bit in (0x01, 0x80):
                os.pwrite(fd, bytes([data[offset] ^ bit]), offset)
                expected = IndexFormatError if offset < digests_offset else IndexChecksumError
                with pytest.raises(expected):
                    IndexReader.open(path).close()
                os.pwrite(fd, data[offset : offset + 1], offset)
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    IndexReader.open(path).close()


def test_checksum_is_verified_on_demand(small_index: tuple[Path, bytes, int]) -> None:
    path, data, digests_offset = small_index
    flipped = bytearray(data)
    flipped[digests_offset + 5] ^= 0x10
    path.write_bytes(flipped)
    # Opening without verification trusts the file (the API verifies once at start-up)...
    with (
        IndexReader.open(path, verify_checksum=False) as reader,
        pytest.raises(IndexChecksumError, match="corrupt"),
    ):
        reader.verify_checksum()
    with pytest.raises(IndexChecksumError):
        IndexReader.open(path)


@pytest.mark.parametrize("keep", [0, 1, 16, 40, -1, -32, -33])
def test_truncated_index_refused(small_index: tuple[Path, bytes, int], keep: int) -> None:
    path, data, _ = small_index
    path.write_bytes(data[:keep] if keep > 0 else data[: len(data) + keep] if keep else b"")
    with pytest.raises(IndexFormatError) as info:
        IndexReader.open(path)
    # Truncation is caught by the size check, before any checksum is computed.
    assert not isinstance(info.value, IndexChecksumError)


def test_appended_bytes_refused(small_index: tuple[Path, bytes, int]) -> None:
    path, data, _ = small_index
    path.write_bytes(data + b"\0")
    with pytest.raises(IndexFormatError, match="size does not match"):
        IndexReader.open(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"PK\x03\x04" + bytes(100), "bad magic"), (b"{}" * 40, "bad magic")],
)
def test_not_an_index(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(IndexFormatError, match=message):
        IndexReader.open(path)


def test_missing_path_or_directory(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="not found"):
        IndexReader.open(tmp_path / "absent.bin")
    with pytest.raises(IndexFormatError, match="directory"):
        IndexReader.open(tmp_path)
