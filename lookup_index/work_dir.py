"""A build's work directory: its manifest and one checkpoint file per finished chunk.

Everything here is peppered: chunk files hold the keyed digests, masks and
row numbers of rejects, and a keyed hash of the chunk's input, so they are
useless without the pepper and say nothing about an identity. Every file is
written to a temporary name, fsync'ed and renamed, and carries its own
SHA-256: a crash leaves whole checkpoints or none, and a damaged one is
recomputed rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookup_index.exceptions import LookupIndexError

_CHUNK_MAGIC = b"PBSCCKP1"
_LENGTH = struct.Struct("<I")
MANIFEST_NAME = "manifest.json"


class WorkDirError(LookupIndexError):
    """The work directory belongs to another build, or the input changed since it was made."""


@dataclass(frozen=True, slots=True)
class SealedChunk:
    """A finished chunk: keyed digests (16 bytes each) and what the summary needs."""

    index: int
    input_mac: bytes
    rows: int
    input_bytes: int
    digests: bytes
    masks: bytes
    primary: bytes
    rejects: tuple[tuple[int, str], ...]
    nir_birth_date_mismatch: int
    #: Private delivery: one sealed contact per key (``contact_size`` bytes each; a sealed
    #: dummy where there is none), and one byte per key saying which are real, so that
    #: merging duplicates keeps a real one. Empty when the build seals no contacts.
    sealed_contacts: bytes = b""
    has_contact: bytes = b""
    contact_size: int = 0
    contact_rejects: tuple[tuple[int, str], ...] = ()

    def encode(self) -> bytes:
        meta = json.dumps(
            {
                "index": self.index,
                "input_mac": self.input_mac.hex(),
                "rows": self.rows,
                "input_bytes": self.input_bytes,
                "keys": len(self.masks),
                "rejects": [list(r) for r in self.rejects],
                "nir_birth_date_mismatch": self.nir_birth_date_mismatch,
                "contact_size": self.contact_size,
                "contact_rejects": [list(r) for r in self.contact_rejects],
            },
            separators=(",", ":"),
        ).encode()
        body = b"".join(
            (
                _CHUNK_MAGIC,
                _LENGTH.pack(len(meta)),
                meta,
                self.digests,
                self.masks,
                self.primary,
                self.has_contact,
                self.sealed_contacts,
            )
        )
        return body + hashlib.sha256(body).digest()

    @classmethod
    def decode(cls, data: bytes) -> SealedChunk:
        """Raises ValueError for anything but a whole, intact checkpoint."""
        body, checksum = data[:-32], data[-32:]
        if not data.startswith(_CHUNK_MAGIC) or hashlib.sha256(body).digest() != checksum:
            raise ValueError("bad checkpoint")
        (length,) = _LENGTH.unpack_from(body, len(_CHUNK_MAGIC))
        start = len(_CHUNK_MAGIC) + _LENGTH.size
        meta = json.loads(body[start : start + length])
        keys = int(meta["keys"])
        contact_size = int(meta.get("contact_size", 0))
        contacts = keys * (1 + contact_size) if contact_size else 0
        arrays = body[start + length :]
        if len(arrays) != keys * 18 + contacts:
            raise ValueError("bad checkpoint")
        flags_end = keys * 18 + (keys if contact_size else 0)
        return cls(
            index=int(meta["index"]),
            input_mac=bytes.fromhex(meta["input_mac"]),
            rows=int(meta["rows"]),
            input_bytes=int(meta["input_bytes"]),
            digests=arrays[: keys * 16],
            masks=arrays[keys * 16 : keys * 17],
            primary=arrays[keys * 17 : keys * 18],
            rejects=tuple((int(n), str(r)) for n, r in meta["rejects"]),
            nir_birth_date_mismatch=int(meta["nir_birth_date_mismatch"]),
            has_contact=arrays[keys * 18 : flags_end],
            sealed_contacts=arrays[flags_end:],
            contact_size=contact_size,
            contact_rejects=tuple((int(n), str(r)) for n, r in meta.get("contact_rejects", [])),
        )


def _write_atomically(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


class ChunkStore:
    """Finished chunks kept in memory: a build without ``--work-dir``."""

    def __init__(self) -> None:
        self._chunks: dict[int, SealedChunk] = {}

    def load(self, index: int) -> SealedChunk | None:
        return self._chunks.get(index)

    def save(self, chunk: SealedChunk) -> None:
        self._chunks[chunk.index] = chunk

    def indices(self) -> list[int]:
        return sorted(self._chunks)

    def wipe(self) -> None:
        self._chunks.clear()


class WorkDir(ChunkStore):
    """Finished chunks checkpointed on disk, so a re-run skips them."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        try:
            path.mkdir(mode=0o700, parents=False, exist_ok=True)
        except FileNotFoundError:
            raise WorkDirError(f"parent of the work directory does not exist: {path}") from None
        except (FileExistsError, NotADirectoryError):
            raise WorkDirError(f"work directory is not a directory: {path}") from None

    def _chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:08d}.ckpt"

    def load_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / MANIFEST_NAME).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            raise WorkDirError(f"work directory manifest is corrupt: {self.path}") from None
        if not isinstance(data, dict):
            raise WorkDirError(f"work directory manifest is corrupt: {self.path}")
        return data

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, sort_keys=True, indent=1).encode()
        _write_atomically(self.path / MANIFEST_NAME, data)

    def load(self, index: int) -> SealedChunk | None:
        try:
            chunk = SealedChunk.decode(self._chunk_path(index).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, struct.error):
            return None  # damaged: computed again and overwritten
        return chunk if chunk.index == index else None

    def save(self, chunk: SealedChunk) -> None:
        _write_atomically(self._chunk_path(chunk.index), chunk.encode())

    def indices(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.path.glob("chunk-*.ckpt"))

    def wipe(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
