"""Streaming reader for the practices' CSV export (delimiter sniffed, columns mappable)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lookup_index.exceptions import InputFileError

REQUIRED_COLUMNS = ("nir", "birth_date", "last_name")
#: ``email`` and ``mobile``: the contact the practice holds, for private delivery.
OPTIONAL_COLUMNS = ("usage_name", "categories", "email", "mobile")
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One data row; ``number`` is its 1-based position after the header row."""

    number: int
    nir: str
    birth_date: str
    last_name: str
    usage_name: str
    categories: str
    email: str = ""
    mobile: str = ""


def parse_column_map(specs: list[str]) -> dict[str, str]:
    """``["nir=NUM_SS", ...]`` -> ``{"nir": "NUM_SS"}``; unknown logical names are refused."""
    mapping: dict[str, str] = {}
    for spec in specs:
        logical, sep, header = spec.partition("=")
        logical = logical.strip().lower()
        if not sep or not header.strip() or logical not in ALL_COLUMNS:
            raise InputFileError(
                f"bad --column {spec.split('=')[0]!r}: expected NAME=HEADER with NAME in "
                + ", ".join(ALL_COLUMNS)
            )
        mapping[logical] = header.strip()
    return mapping


class ExportReader:
    """Iterates over an export without loading it; ``bytes_read`` feeds a progress bar."""

    def __init__(
        self, path: Path, *, encoding: str = "utf-8-sig", columns: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self._encoding = encoding
        self._columns = dict(columns or {})
        self._binary: BinaryIO | None = None
        try:
            self.size = path.stat().st_size
        except FileNotFoundError:
            raise InputFileError(f"input file not found: {path}") from None
        except OSError as exc:
            raise InputFileError(f"cannot read input file {path}: {exc.strerror}") from None

    @property
    def bytes_read(self) -> int:
        if self._binary is None:
            return 0
        # Once consumed, the file is closed: report it whole, not 0, or the progress bar
        # falls back to 0 % while the last chunks are still being hashed.
        return self.size if self._binary.closed else self._binary.tell()

    def rows(self) -> Iterator[ExportRow]:
        try:
            binary = self.path.open("rb")
        except OSError as exc:
            raise InputFileError(f"cannot read input file {self.path}: {exc.strerror}") from None
        self._binary = binary
        try:
            text = io.TextIOWrapper(binary, encoding=self._encoding, newline="")
        except LookupError:
            binary.close()
            raise InputFileError(f"unknown encoding {self._encoding!r}") from None
        with binary, text:
            try:
                yield from self._parse(text)
            except UnicodeDecodeError:
                raise InputFileError(
                    f"input is not valid {self._encoding} text; pass --encoding (e.g. cp1252)"
                ) from None
            except csv.Error as exc:
                raise InputFileError(
                    f"input is not readable CSV ({exc.__class__.__name__})"
                ) from None

    def _parse(self, text: io.TextIOWrapper) -> Iterator[ExportRow]:
        header_line = text.readline()
        if not header_line.strip():
            raise InputFileError("input is empty or has no header row")
        delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
        header = next(csv.reader([header_line], delimiter=delimiter))
        positions = self._resolve(header)
        reader = csv.reader(text, delimiter=delimiter)
        for number, record in enumerate(reader, start=1):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            fields = {
                name: (record[pos] if pos is not None and pos < len(record) else "")
                for name, pos in positions.items()
            }
            yield ExportRow(number=number, **fields)

    def _resolve(self, header: list[str]) -> dict[str, int | None]:
        by_name = {name.strip().lower(): i for i, name in enumerate(header)}
        positions: dict[str, int | None] = {}
        for logical in ALL_COLUMNS:
            wanted = self._columns.get(logical, logical).strip().lower()
            position = by_name.get(wanted)
            if position is None and logical in REQUIRED_COLUMNS:
                raise InputFileError(
                    f"input has no column {wanted!r} for {logical}; map it with "
                    f"--column {logical}=HEADER"
                )
            positions[logical] = position
        return positions
