"""The pepper: a 32-byte secret file, created once, read by the builder and the API."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lookup_index.exceptions import KeyFileError

PEPPER_SIZE = 32


def generate_pepper_file(path: Path) -> None:
    """Create ``path`` with 32 random bytes, mode 0600; never overwrite an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"refusing to overwrite existing key file {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, secrets.token_bytes(PEPPER_SIZE))
        os.fsync(fd)
    finally:
        os.close(fd)


def load_pepper(path: Path) -> bytes:
    """Read a pepper: 32 raw bytes, or 64 hex digits (as secret managers often store text)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file not found: {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data) == PEPPER_SIZE:
        return data
    try:
        decoded = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        decoded = b""
    if len(decoded) != PEPPER_SIZE:
        raise KeyFileError(f"key file {path} does not hold a {PEPPER_SIZE}-byte key")
    return decoded
