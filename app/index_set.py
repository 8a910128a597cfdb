"""The incidents a deployment serves: one index file each, one hash for all of them.

``SELFCHECK_INDEX_PATH`` names one file, several (comma-separated) or a directory (its
``*.bin`` files). Every file must share one ``params_id`` (salt and Argon2 parameters)
and one key-check, so a check computes Argon2id once and looks the digest up in each
file (docs/INDEX_FORMAT.md, "Several incidents"); anything else is refused in one line.
A set is immutable: a reload builds a new one and swaps it whole (app/reloader.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lookup_index import IndexReader, KeyedHasher, KeyMaterial

#: A check's matches: (the index that holds the digest, its category mask there).
Matches = list[tuple[IndexReader, int]]


class IndexSetRefused(Exception):
    """The files cannot be served together; the message is one line naming why."""


def index_paths(setting: Path) -> list[Path]:
    """The files ``SELFCHECK_INDEX_PATH`` names, in a stable order (the answer's order)."""
    if setting.is_dir():
        found = sorted(p for p in setting.glob("*.bin") if p.is_file())
        if not found:
            raise IndexSetRefused(f"index directory {setting} holds no *.bin file")
        return found
    parts = [Path(part.strip()) for part in str(setting).split(",") if part.strip()]
    return parts or [setting]


@dataclass(frozen=True, slots=True, eq=False)
class IndexSet:
    readers: tuple[IndexReader, ...]
    hasher: KeyedHasher
    #: Names this set: its files' build ids (checksums for version 1 files), joined.
    id: str

    @property
    def first(self) -> IndexReader:
        return self.readers[0]

    def lookup(self, digest: bytes) -> Matches:
        """Every index is searched, hit or miss, so the work never depends on the answer."""
        results = [(reader, *reader.lookup_mask(digest)) for reader in self.readers]
        return [(reader, mask) for reader, found, mask in results if found]

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def reader_id(reader: IndexReader) -> str:
    return reader.header.build_id or reader.checksum_hex[:16]


def open_readers(paths: list[Path], vet: Callable[[IndexReader], None]) -> list[IndexReader]:
    """Open and verify every file (checksum here; ``vet``: signature, profile); on any
    refusal, close what was opened and raise it."""
    readers: list[IndexReader] = []
    try:
        for path in paths:
            readers.append(IndexReader.open(path, verify_checksum=True))
            vet(readers[-1])
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    return readers


def match_set(readers: list[IndexReader], key: KeyMaterial) -> IndexSet:
    """One hash for all: the same params_id and key-check everywhere, distinct incidents.
    Raises IndexSetRefused or KeyMismatchError; the caller closes the readers."""
    first = readers[0]
    hasher = first.hasher(key)  # checks the key against the first file's key-check
    seen: dict[str, Path] = {}
    for reader in readers:
        header = reader.header
        reader.check_identity_rules()  # every file, not only the first: no silent misses
        if header.params_id != first.header.params_id:
            raise IndexSetRefused(
                f"{reader.path.name} and {first.path.name} do not share salt and Argon2 "
                f"parameters (params_id {header.params_id} vs {first.header.params_id}): "
                f"rebuild it with lookup-index build --like {first.path.name}"
            )
        if not hmac.compare_digest(header.key_check, first.header.key_check):
            raise IndexSetRefused(
                f"{reader.path.name} was built with another key than {first.path.name}"
            )
        if header.incident_id in seen:
            raise IndexSetRefused(
                f"{reader.path.name} and {seen[header.incident_id].name} are both "
                f"incident {header.incident_id!r}"
            )
        seen[header.incident_id] = reader.path
    return IndexSet(tuple(readers), hasher, "+".join(reader_id(r) for r in readers))
