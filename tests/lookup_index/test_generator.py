"""The synthetic data generator: deterministic, noisy like a real export, honest probes."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from lookup_index.categories import CATEGORIES
from lookup_index.exceptions import InvalidIdentity, LookupIndexError
from lookup_index.generator import (
    EXPORT_COLUMNS,
    LATEST_BIRTH_DATE,
    PROBE_COLUMNS,
    generate,
    read_probes,
)
from lookup_index.normalise import parse_birth_date
from lookup_index.patient_typings import MATCH_KINDS, NEAR_MISS_KINDS
from tests.lookup_index.conftest import Generated


def export_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        header = handle.readline()
        handle.seek(0)
        delimiter = ";" if header.count(";") > header.count(",") else ","
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = generate(400, 3, tmp_path / "a.csv", tmp_path / "a.probes.csv", probes=100)
    second = generate(400, 3, tmp_path / "b.csv", tmp_path / "b.probes.csv", probes=100)
    assert first == second
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.probes.csv").read_bytes() == (tmp_path / "b.probes.csv").read_bytes()


def test_different_seed_different_bytes(tmp_path: Path) -> None:
    generate(400, 3, tmp_path / "a.csv", tmp_path / "a.probes.csv", probes=100)
    generate(400, 5, tmp_path / "b.csv", tmp_path / "b.probes.csv", probes=100)
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.probes.csv").read_bytes() != (tmp_path / "b.probes.csv").read_bytes()


@pytest.mark.parametrize(("seed", "delimiter"), [(2, ","), (3, ";")])
def test_both_delimiters_occur(tmp_path: Path, seed: int, delimiter: str) -> None:
    out = tmp_path / "e.csv"
    generate(10, seed, out)
    assert out.read_text(encoding="utf-8").splitlines()[0] == delimiter.join(EXPORT_COLUMNS)


def test_row_count_and_no_stray_files(tmp_path: Path) -> None:
    summary = generate(250, 1, tmp_path / "e.csv")
    assert summary.rows == 250
    assert summary.probes == 0
    assert len(export_rows(tmp_path / "e.csv")) == 250
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv"]


def test_at_least_one_row(tmp_path: Path) -> None:
    with pytest.raises(LookupIndexError, match="at least 1"):
        generate(0, 1, tmp_path / "e.csv")
    assert list(tmp_path.iterdir()) == []


def test_export_carries_real_world_noise(generated: Generated) -> None:
    # The round-trip test is only as good as the variety here: check it is all present.
    rows = export_rows(generated.export)
    nirs = [r["nir"] for r in rows]
    compact = [re.sub(r"[\s.\-]", "", n).upper() for n in nirs]
    assert any(" " in n for n in nirs)
    assert any("." in n for n in nirs)
    assert any(re.search("2[ab]", n) for n in nirs)  # lower-case Corsica
    assert any(n[5:7] in ("2A", "2B") for n in compact)
    assert any(n[5:7] == "97" for n in compact)  # overseas
    assert any(n[5:7] == "99" for n in compact)  # born abroad
    assert any(len(n) == 15 and n[0] in "78" for n in compact)  # temporary numbers
    assert any(len(n) == 15 and 20 <= int(n[3:5]) <= 42 for n in compact if n[3:5].isdigit())
    dates = [r["birth_date"] for r in rows]
    assert any(re.fullmatch(r"\d{2}/\d{2}/\d{4}", d) for d in dates)
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    names = [r["last_name"] for r in rows]
    assert any(n.islower() for n in names)
    assert any(n.isupper() for n in names)
    assert any(re.search("[À-ÿ]", n) for n in names)
    assert sum(bool(r["usage_name"]) for r in rows) == generated.summary.usage_names > 0
    assert any(r["categories"] for r in rows)
    # Children share a parent's NIR with another birth date.
    assert len(set(compact)) < len(compact)


def test_probes_cover_every_answer(generated: Generated) -> None:
    probes = generated.probes
    assert len(probes) == generated.summary.probes
    kinds = Counter(p.expected for p in probes)
    assert kinds["affected"] == 2000  # min(rows, 2000) by default
    assert kinds["not_found"] > 1000
    assert {p.reason for p in probes if p.expected == "invalid"} == {
        "nir_format",
        "nir_key",
        "nir_range",
        "birth_date",
        "last_name",
    }
    assert all(set(p.categories) <= set(CATEGORIES) for p in probes)
    assert all(p.categories for p in probes if p.expected == "affected")
    assert not any(p.categories or p.reason for p in probes if p.expected == "not_found")
    header = generated.probes_path.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(PROBE_COLUMNS)


def test_read_probes_round_trip(generated: Generated) -> None:
    assert read_probes(generated.probes_path) == generated.probes


def test_generated_birth_dates_are_in_the_past() -> None:
    # The builder and the API reject future dates against the real clock; the generator
    # fixes its own "today" for determinism, which must not be later than the real one.
    assert date.today() >= LATEST_BIRTH_DATE


def test_export_has_the_names_and_dates_exact_matching_missed(generated: Generated) -> None:
    """Issue 14: particles, apostrophes, compound names, diacritics and ligatures, unknown
    birth days, and the export spellings of dates and NIRs real practice software writes."""
    rows = export_rows(generated.export)
    names = [r["last_name"] for r in rows]
    lower = [n.lower() for n in names]
    assert any(re.match(r"(de la|de|du|des|le|la) \w", n) for n in lower)  # particles
    assert any(n.startswith("d'") for n in lower)  # D'Almeida
    assert any(re.match(r"[nm]'\w", n) for n in lower)  # N'Diaye
    assert any(re.search(r"\w-\w", n) for n in names)  # MARTIN-DURAND
    assert any(re.fullmatch(r"[^\W\d_]+ [^\W\d_]+", n) and n.split()[0].lower() not in
               ("de", "du", "des", "le", "la") for n in names)  # fmt: skip
    assert any(re.search("[üöä]", n, re.I) for n in names)
    assert any(re.search("[œæ]", n, re.I) for n in names)
    assert any(re.search("[ñçşğıễạ]", n, re.I) for n in names)
    dates = [r["birth_date"] for r in rows]
    assert any(re.fullmatch(r"00/00/\d{4}|\d{4}-00-00", d) for d in dates)  # day and month
    assert any(re.fullmatch(r"0?0/(0[1-9]|1[0-2]|[1-9])/\d{4}|\d{4}-\d{2}-00", d) for d in dates)
    assert any(re.fullmatch(r"\d/\d{1,2}/\d{4}|\d{1,2}/\d/\d{4}", d) for d in dates)  # D/M/YYYY
    assert any(d.endswith(" 00:00:00") for d in dates)
    nirs = [r["nir"] for r in rows]
    assert any("\u2013" in n for n in nirs)  # en dash
    assert any("\u00a0" in n for n in nirs)  # no-break space


def test_variants_file_holds_every_typing_kind(tmp_path: Path) -> None:
    summary = generate(800, 3, tmp_path / "e.csv", variants_out=tmp_path / "v.csv")
    with (tmp_path / "v.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary.typings
    kinds = Counter((r["kind"], r["expected"]) for r in rows)
    for kind in MATCH_KINDS:
        assert kinds[(kind, "match")] > 0, kind
    for kind in NEAR_MISS_KINDS:
        assert kinds[(kind, "no_match")] > 0, kind
    # Near misses are never a real record's NIR and date (the generator checks them).
    export = set()
    for r in export_rows(tmp_path / "e.csv"):
        try:
            born = parse_birth_date(r["birth_date"], allow_french=True).isoformat()
        except InvalidIdentity:
            continue
        export.add((re.sub(r"[^0-9AB]", "", r["nir"].upper())[:13], born))
    assert len(export) > 700
    assert not any(
        (r["nir"][:13], r["birth_date"]) in export for r in rows if r["expected"] == "no_match"
    )
