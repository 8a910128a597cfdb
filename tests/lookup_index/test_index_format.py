"""The on-disk format: layout, checksum, atomic write, header validation."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from lookup_index.index_header import CATEGORY_MASK_FIELD
from lookup_index.normalise import CANONICAL_VERSION
from lookup_index.profiles import FAST
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
    if isinstance(edit, dict) and isinstance(edit.get("build"), dict):
        edit = edit | {"build": edit["build"] | {"created_at": ""}}  # frees room for the edit
    encoded = json.dumps(edit, separators=(",", ":")).encode()
    assert len(encoded) <= length
    data[16 : 16 + length] = encoded.ljust(length, b" ")
    path.write_bytes(bytes(data))


def _set(dotted: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        for name in parents:
            data = data[name]
        data[last] = value

    return edit


def _delete(dotted: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        for name in parents:
            data = data[name]
        del data[last]

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("digest_size", 32), "unsupported digest or value size"),
        (_set("value_size", 0), "unsupported digest or value size"),
        (_set("value_size", "1"), "unsupported digest or value size"),
        (_set("value_fields", []), "start with the category mask"),
        (_set("value_fields", [{"name": "x", "offset": 0, "size": 1, "type": "u8"}]), "mask"),
        (_set("build.salt", "not hex"), "malformed"),
        (_set("build.salt", "00" * 16), "params_id does not match"),
        (_set("build.profile", "fast"), "malformed"),
        (_set("build.params_id", "0" * 16), "params_id does not match"),
        (_set("count", [2]), "malformed"),
        (_set("count", "two"), "malformed"),
        (_set("incident", None), "malformed"),
        (_set("records", {"distinct": "many", "variant_keys": {}}), "malformed"),
        (_set("format_version", 1), "disagrees with the file's format version"),
        (_delete("build.key_check"), "malformed"),
        (_delete("build"), "malformed"),
        (_delete("records"), "malformed"),
        (_delete("value_fields"), "malformed"),
    ],
)
def test_malformed_header_fields(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = tmp_path / "i.bin"
    header = make_header(2, build_id="0123456789abcdef", records=2)
    write_index(path, header, *random_arrays(2))
    data = header.to_json()
    edit(data)
    _rewrite_header(path, data)
    with pytest.raises(IndexFormatError, match=message):
        IndexReader.open(path, verify_checksum=False)


def test_malformed_version_1_header(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    header = make_header(2, format_version=1)
    write_index(path, header, *random_arrays(2))
    data = header.to_json()
    del data["salt"]
    _rewrite_header(path, data | {"created_at": ""})
    with pytest.raises(IndexFormatError, match="malformed"):
        IndexReader.open(path, verify_checksum=False)


def test_header_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    write_index(path, make_header(2), *random_arrays(2))
    _rewrite_header(path, [1, 2])
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


# --- version 2: manifest, wide values, signature trailer; version 1 still read ---------------


def exact(digests: np.ndarray) -> list[bytes]:
    # Not tolist(): numpy drops a fixed-width element's trailing NUL bytes.
    raw = digests.tobytes()
    return [raw[i : i + 16] for i in range(0, len(raw), 16)]


def test_version_1_file_from_the_old_writer_still_opens(tmp_path: Path) -> None:
    # format_version=1 drives the writer down the version 1 path: flat header, 1-byte values.
    digests, values = random_arrays(50, seed=4)
    # Version 1 files were all made with the first identity rules.
    header = make_header(50, format_version=1, canonical="v1")
    path = tmp_path / "v1.bin"
    write_index(path, header, digests, values)
    data = path.read_bytes()
    assert struct.unpack_from("<8sI", data) == (MAGIC, 1)
    raw = json.loads(data[16 : 16 + struct.unpack_from("<I", data, 12)[0]])
    assert "build" not in raw
    assert raw["salt"] == header.salt.hex()
    with IndexReader.open(path) as reader:
        assert reader.header == header
        assert reader.header.build_id == ""
        assert reader.header.value_size == 1
        for digest, value in zip(exact(digests), values.tolist(), strict=True):
            assert reader.lookup_mask(digest) == (True, value)
        assert reader.info()["params_id"] == reader.header.params_id


def test_version_1_holds_one_value_byte(tmp_path: Path) -> None:
    header = make_header(2, format_version=1, value_size=2)
    with pytest.raises(ValueError, match="one value byte"):
        write_index(tmp_path / "i.bin", header, random_arrays(2)[0], np.zeros((2, 2), np.uint8))


def test_wide_values_keep_a_fixed_stride(tmp_path: Path) -> None:
    # A future sealed contact after the mask: lookups still read byte 0 of slot i's value.
    digests, masks = random_arrays(30, seed=5)
    values = np.zeros((30, 9), np.uint8)
    values[:, 0] = masks
    values[:, 1:] = 0xEE  # the other fields must never leak into the mask
    fields = (
        CATEGORY_MASK_FIELD,
        {"name": "sealed_contact", "offset": 1, "size": 8, "type": "opaque"},
    )
    header = make_header(30, value_size=9, value_fields=fields)
    path = tmp_path / "i.bin"
    size = write_index(path, header, digests, values)
    layout = layout_for(len(encode_header(header)), 30, 9)
    assert size == layout.file_size == layout.digests_offset + 25 * 30 + CHECKSUM_SIZE
    with IndexReader.open(path) as reader:
        assert reader.header.value_fields == fields
        for digest, mask in zip(exact(digests), masks.tolist(), strict=True):
            assert reader.lookup_mask(digest) == (True, mask)
        assert reader.lookup_mask(b"\x00" * 16)[1] == 0


def test_value_fields_must_fit_the_value_size(tmp_path: Path) -> None:
    fields = (CATEGORY_MASK_FIELD, {"name": "x", "offset": 1, "size": 4, "type": "opaque"})
    header = make_header(2, value_size=2, value_fields=fields)
    # The writer checks the header as the reader will: no file a reader would refuse.
    with pytest.raises(IndexFormatError, match="overflow"):
        write_index(tmp_path / "i.bin", header, random_arrays(2)[0], np.zeros((2, 2), np.uint8))
    assert leftovers(tmp_path) == []


def test_manifest_fields_round_trip_and_show_in_info(tmp_path: Path) -> None:
    header = make_header(
        4,
        build_id="0123456789abcdef",
        records=3,
        variant_keys={"birth_name": 3, "usage_name": 1},
    )
    path = tmp_path / "i.bin"
    write_index(path, header, *random_arrays(4))
    with IndexReader.open(path) as reader:
        assert reader.header == header
        info = reader.info()
    assert info["format_version"] == 2
    assert info["build"]["id"] == "0123456789abcdef"
    assert info["build"]["salt"] == header.salt.hex()
    assert info["build"]["params_id"] == info["params_id"] == header.params_id
    assert info["records"] == {"distinct": 3, "variant_keys": {"birth_name": 3, "usage_name": 1}}
    assert info["value_size"] == 1
    assert info["signature"] == {"present": False}


def test_params_id_names_salt_and_parameters() -> None:
    base = make_header(1)
    assert make_header(1, incident_id="other", build_id="x").params_id == base.params_id
    assert make_header(1, salt=bytes(16)).params_id != base.params_id
    assert make_header(1, profile=FAST).params_id != base.params_id


def test_signature_trailer_is_recognised_and_anything_else_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.bin"
    write_index(path, make_header(3), *random_arrays(3))
    unsigned = path.read_bytes()
    public_key = bytes(range(32))
    path.write_bytes(unsigned + b"PBSCSIG\n" + public_key + b"\x01" * 64)
    with IndexReader.open(path) as reader:
        assert reader.info()["signature"] == {
            "present": True,
            "public_key": public_key.hex(),
            "verified": False,
        }
    path.write_bytes(unsigned + b"NOTASIG\n" + public_key + b"\x01" * 64)
    with pytest.raises(IndexFormatError, match="not a signature"):
        IndexReader.open(path)
    path.write_bytes(unsigned + b"\x00" * 10)
    with pytest.raises(IndexFormatError, match="size does not match"):
        IndexReader.open(path)


def test_identity_rules_are_recorded_and_older_ones_refused(tmp_path: Path) -> None:
    """An index made with other identity rules opens (info works) but gives no hasher:
    its keys would answer "not found" for every name the rules fold differently."""
    path = tmp_path / "i.bin"
    write_index(path, make_header(2), *random_arrays(2))
    with IndexReader.open(path) as reader:
        assert reader.info()["build"]["canonical"] == CANONICAL_VERSION
        reader.hasher(PEPPER)
    old = tmp_path / "old.bin"
    write_index(old, make_header(2), *random_arrays(2))
    data = make_header(2).to_json()
    del data["build"]["canonical"]  # as written before issue 14
    _rewrite_header(old, data)
    with IndexReader.open(old, verify_checksum=False) as reader:
        assert reader.header.canonical == "v1"
        with pytest.raises(IndexFormatError, match=r"identity rules v1.*rebuild"):
            reader.hasher(PEPPER)
