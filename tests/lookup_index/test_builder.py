"""The builder: export -> index, checked end to end through the reader.

The generated export carries the noise real practice software produces
(separators, case, DD/MM/YYYY dates, children under a parent's NIR, usage
names, invalid rows); its probes file says what each query must answer.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from lookup_index.builder import BuildOptions, BuildSummary, build_index
from lookup_index.exceptions import InputFileError, InvalidIdentity, LookupIndexError
from lookup_index.generator import Probe
from lookup_index.normalise import canonical_identity, normalise_last_name, normalise_nir
from lookup_index.profiles import TEST
from lookup_index.reader import IndexReader, LookupResult
from tests.lookup_index.conftest import Built, Generated
from tests.lookup_index.helpers import PEPPER, keyed, leftovers, masked_index, write_export

REJECT_LINE = re.compile(r"[0-9]+,(nir_format|nir_key|nir_range|birth_date|last_name|categories)")

ANNE = keyed("2700575123045")
BRUNO = keyed("1820269123456")
CLARA = keyed("295032A004123")


def build(source: Path, out: Path | None = None, **changes: object) -> BuildSummary:
    options: dict[str, object] = {"workers": 1, "profile": TEST}
    options.update(changes)
    out = out or source.with_name("index.bin")
    return build_index(BuildOptions(input=source, out=out, pepper=PEPPER, **options))  # type: ignore[arg-type]


def lookup(index: Path, nir: str, born: str, name: str) -> LookupResult:
    with IndexReader.open(index) as reader:
        canonical = canonical_identity(nir, born, name).canonical()
        return reader.lookup(reader.hasher(PEPPER).digest(canonical))


def answer(reader: IndexReader, probe: Probe) -> tuple[str, tuple[str, ...], str]:
    """What the index says about a probe, in the probes file's terms."""
    try:
        identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    except InvalidIdentity as exc:
        return "invalid", (), exc.reason
    result = reader.lookup(reader.hasher(PEPPER).digest(identity.canonical()))
    return ("affected", result.categories, "") if result.found else ("not_found", (), "")


def assert_every_probe_answered(index: Path, probes: list[Probe]) -> None:
    with IndexReader.open(index) as reader:
        wrong = [
            (p, got)
            for p in probes
            if (got := answer(reader, p)) != (p.expected, p.categories, p.reason)
        ]
    assert wrong == []
    # The probes must exercise every kind of answer, or the check above proves little.
    kinds = Counter(p.expected for p in probes)
    assert kinds["affected"] > 500
    assert kinds["not_found"] > 500
    assert kinds["invalid"] > 100
    assert {p.reason for p in probes if p.expected == "invalid"} == {
        "nir_format",
        "nir_key",
        "nir_range",
        "birth_date",
        "last_name",
    }


# --- generated round trip -----------------------------------------------------------------


def test_round_trip_answers_every_probe(built: Built, generated: Generated) -> None:
    assert_every_probe_answered(built.index, generated.probes)


def test_round_trip_with_a_process_pool(generated: Generated, tmp_path: Path) -> None:
    out = tmp_path / "pool.bin"
    summary = build(generated.export, out, workers=2)
    assert_every_probe_answered(out, generated.probes)
    # Same input, same counts, whatever the number of workers (the salt differs, not the keys).
    serial = build(generated.export, tmp_path / "serial.bin", workers=1)
    ignore = {"seconds", "rows_per_second", "build_id"}
    assert {k: v for k, v in summary.as_dict().items() if k not in ignore} == {
        k: v for k, v in serial.as_dict().items() if k not in ignore
    }
    assert summary.build_id != serial.build_id
    # With the same salt the files are the same, byte for byte, build id and time aside.
    with IndexReader.open(out) as reader:
        salt = reader.header.salt
    build(generated.export, tmp_path / "serial.bin", workers=1, salt=salt)
    assert masked_index(out) == masked_index(tmp_path / "serial.bin")


def test_summary_adds_up(built: Built, generated: Generated) -> None:
    summary = built.summary
    rejected = sum(summary.rejected.values())
    assert summary.rows_read == generated.summary.rows
    assert rejected == generated.summary.invalid_rows > 0
    assert summary.keys_hashed == sum(summary.variant_keys.values())
    assert summary.variant_keys["birth_name"] == summary.rows_read - rejected
    assert summary.variant_keys["usage_name"] == summary.usage_name_keys
    # Name variants (glued particles, compound-name parts) stay a modest share of the keys.
    assert summary.keys_hashed / (summary.rows_read - rejected + summary.usage_name_keys) > 1.05
    assert summary.keys_hashed / (summary.rows_read - rejected + summary.usage_name_keys) < 1.5
    assert summary.indexed_keys == summary.keys_hashed - summary.duplicates
    assert 0 < summary.usage_name_keys <= generated.summary.usage_names
    # Children are the only rows whose NIR was not drawn from their own birth date.
    assert 0 < summary.nir_birth_date_mismatch <= generated.summary.children
    with IndexReader.open(built.index) as reader:
        assert reader.header.count == summary.indexed_keys
        assert reader.header.incident_id == "test-incident"
        assert reader.header.incident_label == "Synthetic test incident"
        assert reader.header.profile == TEST
    assert summary.file_size == built.index.stat().st_size


def test_rejects_report_rows_and_reasons_only(built: Built, generated: Generated) -> None:
    lines = built.index.with_name("index.bin.rejects.csv").read_text().splitlines()
    assert lines[0] == "row,reason"
    assert all(REJECT_LINE.fullmatch(line) for line in lines[1:]), lines
    reported = {int(row): reason for row, reason in (line.split(",") for line in lines[1:])}
    # Re-validate every input row independently: the report must name exactly the bad ones.
    with generated.export.open(newline="", encoding="utf-8") as handle:
        sample = handle.readline()
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        expected = {}
        for number, row in enumerate(csv.DictReader(handle, delimiter=delimiter), start=1):
            try:
                canonical_identity(
                    row["nir"], row["birth_date"], row["last_name"], allow_french_dates=True
                )
            except InvalidIdentity as exc:
                expected[number] = exc.reason
    assert reported == expected


def _needles(export: Path) -> set[bytes]:
    """Every spelling of every NIR and name in the export, raw and normalised."""
    found: set[bytes] = set()
    with export.open(newline="", encoding="utf-8") as handle:
        sample = handle.readline()
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        for row in csv.DictReader(handle, delimiter=delimiter):
            texts = {row["nir"], row["last_name"], row["usage_name"]}
            compact = re.sub(r"[\s.\-]", "", row["nir"]).upper()
            texts |= {compact, compact[:13]}
            for name in (row["last_name"], row["usage_name"]):
                with contextlib.suppress(InvalidIdentity):
                    texts.add(normalise_last_name(name))
            try:
                identity = canonical_identity(
                    row["nir"], row["birth_date"], row["last_name"], allow_french_dates=True
                )
                texts |= {normalise_nir(row["nir"]), identity.canonical().decode()}
            except InvalidIdentity:
                pass
            found |= {t.encode() for t in texts}
    # Shorter strings turn up by chance in ~60 kB of random digests (a 3-byte name has a
    # ~0.3 % chance); six bytes and more cannot, so any hit is a real leak.
    return {n for n in found if len(n) >= 6}


def test_index_holds_no_plaintext(built: Built, generated: Generated) -> None:
    data = built.index.read_bytes()
    needles = _needles(generated.export)
    assert len(needles) > 6000
    assert [n for n in needles if n in data] == []
    assert PEPPER not in data


# --- hand-written exports -----------------------------------------------------------------


def test_duplicate_rows_merge_their_categories(tmp_path: Path) -> None:
    source = write_export(
        tmp_path / "e.csv",
        [
            (ANNE, "1970-05-02", "Martin", "", "identity;nir"),
            ("2 70 05 75 123 045 " + ANNE[13:], "02/05/1970", "MARTIN", "", "email"),
            (BRUNO, "1982-02-11", "Bernard", "", ""),
        ],
    )
    summary = build(source)
    assert (summary.keys_hashed, summary.indexed_keys, summary.duplicates) == (3, 2, 1)
    assert summary.distinct_records == 2
    index = tmp_path / "index.bin"
    assert lookup(index, ANNE, "1970-05-02", "martin") == LookupResult(
        True, ("identity", "nir", "email")
    )
    assert lookup(index, BRUNO, "1982-02-11", "Bernard") == LookupResult(
        True, ("identity", "nir", "birth_date")
    )


def test_usage_name_gives_a_second_key(tmp_path: Path) -> None:
    source = write_export(
        tmp_path / "e.csv",
        [
            (ANNE, "1970-05-02", "Martin", "Durand", ""),
            (BRUNO, "1982-02-11", "Lefèvre", "LEFEVRE", ""),  # same name once folded
            (CLARA, "1995-03-20", "Petit", "---", ""),  # unusable usage name
        ],
    )
    summary = build(source)
    assert summary.usage_name_keys == 1
    assert summary.indexed_keys == 4
    assert summary.distinct_records == 3
    assert sum(summary.rejected.values()) == 0  # a bad usage name does not reject the row
    index = tmp_path / "index.bin"
    for name in ("Martin", "Durand"):
        assert lookup(index, ANNE, "1970-05-02", name).found
    assert lookup(index, BRUNO, "1982-02-11", "Lefevre").found
    assert lookup(index, CLARA, "1995-03-20", "Petit").found
    assert not lookup(index, BRUNO, "1982-02-11", "Durand").found


def test_categories_column_and_default(tmp_path: Path) -> None:
    source = write_export(
        tmp_path / "e.csv",
        [
            (ANNE, "1970-05-02", "Martin", "", " Identity ; PHONE "),
            (BRUNO, "1982-02-11", "Bernard", "", ""),
            (CLARA, "1995-03-20", "Petit", "", "identity;bogus"),
        ],
    )
    summary = build(source, categories=("identity", "address"), max_reject_rate=50)
    assert summary.rejected == Counter({"categories": 1})
    index = tmp_path / "index.bin"
    assert lookup(index, ANNE, "1970-05-02", "Martin").categories == ("identity", "phone")
    assert lookup(index, BRUNO, "1982-02-11", "Bernard").categories == ("identity", "address")
    assert not lookup(index, CLARA, "1995-03-20", "Petit").found
    with IndexReader.open(index) as reader:
        assert reader.header.incident_categories == ("identity", "address")


def test_no_default_category_is_refused(tmp_path: Path) -> None:
    source = write_export(tmp_path / "e.csv", [(ANNE, "1970-05-02", "Martin", "", "")])
    with pytest.raises(LookupIndexError, match="at least one"):
        build(source, categories=())
    assert leftovers(tmp_path, keep=[source]) == []


@pytest.mark.parametrize(
    ("delimiter", "encoding", "header", "columns", "french"),
    [
        (",", "utf-8", ("nir", "birth_date", "last_name"), {}, False),
        (";", "utf-8", ("nir", "birth_date", "last_name"), {}, False),
        (",", "utf-8-sig", ("nir", "birth_date", "last_name"), {}, False),  # with a BOM
        (",", "utf-8", ("nir", "birth_date", "last_name"), {}, True),
        (
            ";",
            "utf-8-sig",
            ("NUM_SS", "DATE_NAISS", "NOM"),
            {"nir": "NUM_SS", "birth_date": "DATE_NAISS", "last_name": "NOM"},
            True,
        ),
        (",", "cp1252", ("nir", "birth_date", "last_name"), {}, False),
    ],
)
def test_export_dialects(
    tmp_path: Path,
    delimiter: str,
    encoding: str,
    header: tuple[str, ...],
    columns: dict[str, str],
    french: bool,
) -> None:
    people = [(ANNE, "1970-05-02", "Hervé"), (BRUNO, "1982-02-11", "Lœuillet")]
    if encoding == "cp1252":
        people = [(ANNE, "1970-05-02", "Hervé"), (BRUNO, "1982-02-11", "Lefèvre")]
    rows = [
        (nir, f"{born[8:]}/{born[5:7]}/{born[:4]}" if french else born, name)
        for nir, born, name in people
    ]
    source = write_export(
        tmp_path / "e.csv", rows, header=header, delimiter=delimiter, encoding=encoding
    )
    if encoding == "utf-8-sig":
        assert source.read_bytes().startswith(b"\xef\xbb\xbf")
    summary = build(source, columns=columns, encoding=encoding)
    assert summary.rejected == Counter()
    for nir, born, name in people:
        assert lookup(tmp_path / "index.bin", nir, born, name).found
    assert not lookup(tmp_path / "index.bin", ANNE, "1970-05-03", "Hervé").found


# --- failures leave nothing behind --------------------------------------------------------


def test_no_valid_row_leaves_nothing(tmp_path: Path) -> None:
    source = write_export(
        tmp_path / "e.csv",
        [("123", "1970-05-02", "Martin", "", ""), (ANNE, "31/02/1970", "Martin", "", "")],
    )
    with pytest.raises(LookupIndexError, match="no valid row"):
        build(source, max_reject_rate=100)
    assert leftovers(tmp_path, keep=[source]) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_column_leaves_nothing(tmp_path: Path, workers: int) -> None:
    source = write_export(tmp_path / "e.csv", [(ANNE, "Martin")], header=("nir", "last_name"))
    with pytest.raises(InputFileError, match="no column 'birth_date'"):
        build(source, workers=workers)
    assert leftovers(tmp_path, keep=[source]) == []


def test_undecodable_input_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "e.csv"
    source.write_bytes(
        b"nir,birth_date,last_name\n" + f"{ANNE},1970-05-02,Herv".encode() + b"\xe9\n"
    )
    with pytest.raises(InputFileError, match="--encoding"):
        build(source)
    assert leftovers(tmp_path, keep=[source]) == []


def test_failed_build_keeps_the_existing_index(tmp_path: Path) -> None:
    good = write_export(tmp_path / "good.csv", [(ANNE, "1970-05-02", "Martin", "", "")])
    bad = write_export(tmp_path / "bad.csv", [("123", "1970-05-02", "Martin", "", "")])
    out = tmp_path / "index.bin"
    build(good, out)
    rejects = out.with_name("index.bin.rejects.csv")
    before = out.read_bytes(), rejects.read_bytes()
    with pytest.raises(LookupIndexError):
        build(bad, out)
    assert (out.read_bytes(), rejects.read_bytes()) == before
    assert leftovers(tmp_path, keep=[good, bad, out, rejects]) == []
    assert lookup(out, ANNE, "1970-05-02", "Martin").found


def test_missing_input_or_output_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        build(tmp_path / "absent.csv")
    source = write_export(tmp_path / "e.csv", [(ANNE, "1970-05-02", "Martin", "", "")])
    with pytest.raises(LookupIndexError, match="output directory"):
        build(source, tmp_path / "no-such-dir" / "index.bin")
    assert leftovers(tmp_path, keep=[source]) == []


def test_progress_is_reported(generated: Generated, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = build_index(
        BuildOptions(generated.export, tmp_path / "i.bin", PEPPER, TEST, workers=1),
        lambda rows, done: calls.append((rows, done)),
    )
    assert len(calls) >= summary.rows_read // 256
    rows, done = zip(*calls, strict=True)
    # Both counters only move forward, and the last call reports the whole export: a bar
    # that fell back while the last chunks hash would make the ETA useless.
    assert list(rows) == sorted(rows)
    assert list(done) == sorted(done)
    assert calls[-1] == (summary.rows_read, generated.export.stat().st_size)
