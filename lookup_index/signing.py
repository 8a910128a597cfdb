"""The index signature: Ed25519 over the checksum, made on the build machine, checked by readers.

The trailer (docs/INDEX_FORMAT.md, "Signature trailer") is ``PBSCSIG\\n``, the signer's
32-byte public key and a 64-byte signature over ``SIGNED_PREFIX || SHA-256`` (the file's
checksum, which covers header and body). API hosts hold only the public key, so a
compromised host can rewrite an index and its checksum but cannot re-sign it: the reader
refuses a signature by any key but the pinned one.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lookup_index.exceptions import SignatureError
from lookup_index.index_format import SIGNATURE_MAGIC, SIGNATURE_TRAILER_SIZE

SIGNED_PREFIX = b"patient-breach-selfcheck/index-signature/v2\0"
PUBLIC_KEY_SIZE = 32


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise SignatureError(f"refusing to overwrite existing key file {path}") from None
    except OSError as exc:
        raise SignatureError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_signing_key(name: Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, PKCS#8 PEM, mode 0600) and ``NAME.pub`` (public, PEM)."""
    private_path, public_path = Path(f"{name}.key"), Path(f"{name}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise SignatureError(f"refusing to overwrite existing key file {path}")
    key = Ed25519PrivateKey.generate()
    _write_new(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write_new(
        public_path,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        0o644,
    )
    return private_path, public_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise SignatureError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an unencrypted Ed25519 private key (PEM)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} is not an Ed25519 public key (PEM)")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signature_trailer(key: Ed25519PrivateKey, checksum: bytes) -> bytes:
    """The bytes appended after the checksum."""
    trailer = (
        SIGNATURE_MAGIC + raw_public_key(key.public_key()) + key.sign(SIGNED_PREFIX + checksum)
    )
    assert len(trailer) == SIGNATURE_TRAILER_SIZE
    return trailer


def verify_trailer(trailer: bytes | None, checksum: bytes, expected: Ed25519PublicKey) -> None:
    """Refuse an unsigned index, one signed by another key, or a signature that does not verify.

    ``checksum`` must already match the file's content (``IndexReader.verify_checksum``).
    """
    if trailer is None:
        raise SignatureError("the index is not signed, and a signature is required")
    signer = trailer[len(SIGNATURE_MAGIC) : len(SIGNATURE_MAGIC) + PUBLIC_KEY_SIZE]
    if signer != raw_public_key(expected):
        raise SignatureError("the index is signed by another key than the pinned public key")
    try:
        expected.verify(trailer[len(SIGNATURE_MAGIC) + PUBLIC_KEY_SIZE :], SIGNED_PREFIX + checksum)
    except InvalidSignature:
        raise SignatureError("the index signature does not verify: the file was altered") from None
