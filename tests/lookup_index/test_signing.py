"""The Ed25519 signature trailer: only the build machine's key can make an index the API accepts."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from lookup_index.exceptions import SignatureError
from lookup_index.index_format import CHECKSUM_SIZE, SIGNATURE_TRAILER_SIZE
from lookup_index.reader import IndexReader
from lookup_index.signing import (
    generate_signing_key,
    load_public_key,
    load_signing_key,
    raw_public_key,
    signature_trailer,
)
from tests.lookup_index.conftest import Generated
from tests.lookup_index.test_cli import assert_one_line_error, run


@dataclass(frozen=True)
class Signed:
    index: Path
    key: Path
    public: Path
    pepper: Path
    other_key: Path
    other_public: Path


@pytest.fixture(scope="module")
def signed(generated: Generated, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    from lookup_index.cli import main

    d = tmp_path_factory.mktemp("signed")
    generate_signing_key(d / "build")
    generate_signing_key(d / "intruder")
    assert main(["keygen", "--out", str(d / "pepper.key")]) == 0
    argv = ["build", "--input", str(generated.export), "--key-file", str(d / "pepper.key")]
    argv += ["--out", str(d / "index.bin"), "--profile", "test", "--quiet"]
    assert main([*argv, "--signing-key", str(d / "build.key")]) == 0
    assert main([*argv[:-5], "--out", str(d / "unsigned.bin"), "--profile", "test"]) == 0
    return Signed(
        d / "index.bin",
        d / "build.key",
        d / "build.pub",
        d / "pepper.key",
        d / "intruder.key",
        d / "intruder.pub",
    )


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    end = len(data) - SIGNATURE_TRAILER_SIZE - CHECKSUM_SIZE
    return data[:end], data[end : end + CHECKSUM_SIZE], data[end + CHECKSUM_SIZE :]


def _verify(capsys: pytest.CaptureFixture[str], s: Signed, index: Path) -> tuple[int, str, str]:
    argv = ("verify", index, "--key-file", s.pepper, "--public-key", s.public)
    return run(capsys, *argv)


def test_keygen_signing_writes_a_private_and_a_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keygen", "--signing", "--out", tmp_path / "ci")
    assert code == 0
    assert "ci.key" in out
    assert "ci.pub" in out
    assert stat.S_IMODE((tmp_path / "ci.key").stat().st_mode) == 0o600
    load_signing_key(tmp_path / "ci.key")
    load_public_key(tmp_path / "ci.pub")
    assert_one_line_error(
        *run(capsys, "keygen", "--signing", "--out", tmp_path / "ci"), "refusing to overwrite"
    )


def test_a_signed_index_verifies_against_its_public_key(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _verify(capsys, signed, signed.index)
    assert code == 0
    assert "signature" in out
    with IndexReader.open(signed.index) as reader:
        assert reader.signed
        assert reader.info()["signature"]["present"] is True


def test_an_unsigned_index_is_refused_when_a_public_key_is_given(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = signed.index.with_name("unsigned.bin")
    assert run(capsys, "verify", unsigned, "--key-file", signed.pepper)[0] == 0
    assert_one_line_error(*_verify(capsys, signed, unsigned), "not signed")


def test_a_byte_flip_with_a_recomputed_checksum_is_refused(
    signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, _, trailer = _split(signed.index.read_bytes())
    flipped = bytearray(body)
    flipped[-1] ^= 0x01  # the last key's category mask: a victim's exposure rewritten
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(bytes(flipped) + hashlib.sha256(flipped).digest() + trailer)
    assert run(capsys, "verify", tampered, "--key-file", signed.pepper)[0] == 0  # checksum ok
    assert_one_line_error(*_verify(capsys, signed, tampered), "does not verify")


def test_a_file_re_signed_with_another_key_is_refused(
    signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, _, _ = _split(signed.index.read_bytes())
    altered = body[:-1] + bytes([body[-1] ^ 0x01])
    checksum = hashlib.sha256(altered).digest()
    resigned = tmp_path / "resigned.bin"
    resigned.write_bytes(
        altered + checksum + signature_trailer(load_signing_key(signed.other_key), checksum)
    )
    assert_one_line_error(*_verify(capsys, signed, resigned), "another key")
    # Claiming the pinned public key does not help: the signature is still the intruder's.
    trailer = signature_trailer(load_signing_key(signed.other_key), checksum)
    pinned = raw_public_key(load_public_key(signed.public))
    forged = tmp_path / "forged.bin"
    forged.write_bytes(altered + checksum + trailer[:8] + pinned + trailer[40:])
    assert_one_line_error(*_verify(capsys, signed, forged), "does not verify")


def test_bad_key_files_are_one_line_errors(
    signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.pem").write_text("not a key\n")
    argv = ("verify", signed.index, "--key-file", signed.pepper, "--public-key")
    assert_one_line_error(*run(capsys, *argv, tmp_path / "junk.pem"), "Ed25519 public key")
    assert_one_line_error(*run(capsys, *argv, tmp_path / "absent.pub"), "not found")
    with pytest.raises(SignatureError, match="private key"):
        load_signing_key(signed.public)
