"""The export reader: delimiter, BOM, column mapping, row numbering, unreadable input."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookup_index.csv_input import ExportReader, ExportRow, parse_column_map
from lookup_index.exceptions import InputFileError


def rows_of(path: Path, **kwargs: object) -> list[ExportRow]:
    return list(ExportReader(path, **kwargs).rows())  # type: ignore[arg-type]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_delimiter_is_taken_from_the_header(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "e.csv"
    lines = ["nir", "birth_date", "last_name", "categories"], ["1", "2", "3", "identity;nir"]
    path.write_text(
        "\n".join(
            delimiter.join(f'"{v}"' if ";" in v or "," in v else v for v in line) for line in lines
        )
        + "\n"
    )
    [row] = rows_of(path)
    assert (row.nir, row.birth_date, row.last_name, row.categories) == (
        "1",
        "2",
        "3",
        "identity;nir",
    )
    assert row.usage_name == ""


def test_bom_header_names_and_case(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes("\ufeffNIR,Birth_Date, Last_Name \r\n1,2,3\r\n".encode())
    [row] = rows_of(path)
    assert (row.nir, row.birth_date, row.last_name) == ("1", "2", "3")
    # Without the BOM-aware codec the first header would read "\ufeffnir".
    with pytest.raises(InputFileError, match="no column 'nir'"):
        rows_of(path, encoding="utf-8")


def test_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("NUM_SS;DATE_NAISS;NOM;NOM_USAGE\n1;2;3;4\n")
    columns = parse_column_map(
        ["nir=NUM_SS", "birth_date=date_naiss", "last_name = NOM", "usage_name=NOM_USAGE"]
    )
    [row] = rows_of(path, columns=columns)
    assert (row.nir, row.birth_date, row.last_name, row.usage_name) == ("1", "2", "3", "4")


@pytest.mark.parametrize("spec", ["nir", "nir=", "=NUM_SS", "phone=TEL", "secu=NUM_SS"])
def test_bad_column_spec(spec: str) -> None:
    with pytest.raises(InputFileError, match="bad --column"):
        parse_column_map([spec])


def test_missing_required_column_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("nir,last_name\n1,2\n")
    with pytest.raises(InputFileError, match="--column birth_date=HEADER"):
        rows_of(path)


def test_row_numbers_count_data_rows_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text('nir,birth_date,last_name\n1,a,x\n\n2,b,"y, z"\n3\n')
    rows = rows_of(path)
    assert [(r.number, r.nir, r.last_name) for r in rows] == [
        (1, "1", "x"),
        (3, "2", "y, z"),
        (4, "3", ""),  # short row: missing fields read as empty, then rejected by validation
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or has no header"),
        (b"\n\n", "empty or has no header"),
        (b"nir,birth_date,last_name\n1,2,Herv\xe9\n", "not valid utf-8-sig"),
    ],
)
def test_unreadable_input(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        rows_of(path)


def test_other_encoding_on_request(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"nir,birth_date,last_name\n1,2,Herv\xe9\n")
    [row] = rows_of(path, encoding="cp1252")
    assert row.last_name == "Hervé"
    with pytest.raises(InputFileError, match="unknown encoding"):
        rows_of(path, encoding="no-such-codec")


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        ExportReader(tmp_path / "absent.csv")
    with pytest.raises(InputFileError, match="cannot read"):
        rows_of(tmp_path)  # a directory
