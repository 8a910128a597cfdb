"""Helpers shared by the lookup_index tests: synthetic NIRs and small CSV exports.

Every NIR here is built from an invented 13-character body with python-stdnum's
key, so no test ever carries a real person's number.
"""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from stdnum.fr.nir import calc_check_digits

from lookup_index.categories import CATEGORIES
from lookup_index.generator import EXPORT_COLUMNS
from lookup_index.index_format import CHECKSUM_SIZE, IndexHeader
from lookup_index.keyed_hash import key_check_value
from lookup_index.profiles import TEST

#: Fixed test key; known-answer vectors are computed with it.
PEPPER = bytes(range(32))
OTHER_PEPPER = bytes(range(1, 33))


def keyed(body: str) -> str:
    """A 15-character NIR: ``body`` (13 characters) followed by its correct key."""
    assert len(body) == 13, body
    return body + calc_check_digits(body)


def wrong_key(body: str) -> str:
    """``body`` with a key that is off by one, so only the key check can reject it."""
    good = int(calc_check_digits(body))
    return body + f"{good % 97 + 1:02d}"


def write_export(
    path: Path,
    rows: Iterable[Sequence[str]],
    *,
    header: Sequence[str] = EXPORT_COLUMNS,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def leftovers(directory: Path, keep: Iterable[Path] = ()) -> list[str]:
    """Names in ``directory`` other than ``keep``: what a failed build left behind."""
    kept = {p.name for p in keep}
    return sorted(p.name for p in directory.iterdir() if p.name not in kept)


def make_header(count: int, **changes: object) -> IndexHeader:
    """A fixed, valid header (no clock, no randomness), so written files are reproducible."""
    values: dict[str, object] = {
        "profile": TEST,
        "salt": bytes(range(16)),
        "key_check": key_check_value(PEPPER),
        "count": count,
        "incident_id": "inc-1",
        "incident_label": "Incident de test",
        "incident_categories": ("identity", "nir", "birth_date"),
        "categories": CATEGORIES,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    values.update(changes)
    return IndexHeader(**values)  # type: ignore[arg-type]


def random_arrays(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sorted unique random digests and random values, as write_index wants them."""
    rng = np.random.default_rng(seed)
    digests = np.unique(np.frombuffer(rng.bytes(16 * count), dtype="S16"))
    assert len(digests) == count
    return digests, rng.integers(0, 256, count, dtype=np.uint8)


def masked_index(path: Path) -> tuple[dict[str, object], bytes]:
    """An index's header without its build id and time, and every byte after the header.

    Two builds of the same input, salt and pepper must be equal under this mask, whatever
    ran them (inline, a process pool, a Dask cluster, or a resumed run).
    """
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    header = json.loads(data[16 : 16 + length])
    header["build"] = {k: v for k, v in header["build"].items() if k not in {"id", "created_at"}}
    body_start = -(-(16 + length) // 64) * 64
    return header, data[body_start:-CHECKSUM_SIZE]
