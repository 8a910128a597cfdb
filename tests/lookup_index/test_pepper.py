"""The pepper file: created once with mode 0600, never overwritten, read as raw or hex."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lookup_index.exceptions import KeyFileError
from lookup_index.pepper import PEPPER_SIZE, generate_pepper_file, load_pepper
from tests.lookup_index.helpers import PEPPER


def test_generated_key_is_32_random_bytes_readable_only_by_its_owner(tmp_path: Path) -> None:
    first, second = tmp_path / "a.key", tmp_path / "b.key"
    previous = os.umask(0)  # the mode must not depend on a permissive umask
    try:
        generate_pepper_file(first)
    finally:
        os.umask(previous)
    generate_pepper_file(second)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert len(load_pepper(first)) == PEPPER_SIZE
    assert load_pepper(first) != load_pepper(second)


def test_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "existing.key"
    path.write_bytes(PEPPER)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_pepper_file(path)
    assert path.read_bytes() == PEPPER


def test_cannot_create_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        generate_pepper_file(tmp_path / "missing" / "x.key")


@pytest.mark.parametrize(
    "content",
    [
        PEPPER,
        PEPPER.hex().encode(),
        PEPPER.hex().upper().encode() + b"\n",
        b"  " + PEPPER.hex().encode() + b"\r\n",
    ],
)
def test_loads_raw_or_hex(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    assert load_pepper(path) == PEPPER


@pytest.mark.parametrize(
    "content",
    [b"", PEPPER[:31], PEPPER + b"\0", PEPPER.hex()[:-2].encode(), b"zz" * 32, "é".encode() * 40],
)
def test_malformed_key_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as info:
        load_pepper(path)
    message = str(info.value)
    assert "32-byte" in message
    if len(content) >= 8:
        assert content.hex() not in message
        assert content.decode("latin-1") not in message


def test_missing_or_unreadable_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_pepper(tmp_path / "absent.key")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_pepper(tmp_path)  # a directory
