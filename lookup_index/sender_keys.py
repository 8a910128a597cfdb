"""The send-worker's X25519 key pair: ``sender.key`` (worker only) and ``sender.pub`` (builder).

The builder seals every contact to ``sender.pub``; only the worker, holding
``sender.key``, can open one, and then only with the identity's binding key, which
arrives in an outbox entry written because someone typed that identity.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from lookup_index.exceptions import KeyFileError, SignatureError
from lookup_index.signing import _write_new

__all__ = ["generate_sender_keys", "load_sender_private_key", "load_sender_public_key"]


def generate_sender_keys(name: Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, PKCS#8 PEM, mode 0600) and ``NAME.pub`` (public, PEM)."""
    private_path, public_path = Path(f"{name}.key"), Path(f"{name}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"refusing to overwrite existing key file {path}")
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        _write_new(private_path, private, 0o600)
        _write_new(public_path, public, 0o644)
    except SignatureError as exc:
        raise KeyFileError(str(exc)) from None
    return private_path, public_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_sender_public_key(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, "sender public key"))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PublicKey):
        raise KeyFileError(f"{path} is not an X25519 public key (lookup-index keygen --sender)")
    return key


def load_sender_private_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "sender key"), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(f"{path} is not an X25519 private key (lookup-index keygen --sender)")
    return key
