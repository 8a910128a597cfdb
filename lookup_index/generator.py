"""Synthetic, deterministic French patient exports and probe files.

No real patient data ever enters the repository: tests, benchmarks, the demo
and the load tests all run on what this module generates. NIRs are built
from sex, birth date and a real-looking birthplace with a correct key, and the
export carries the noise real practice software produces.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from faker import Faker
from stdnum.fr import nir as stdnum_nir

from lookup_index.categories import CATEGORIES, DEFAULT_INCIDENT_CATEGORIES, mask_of, names_of
from lookup_index.exceptions import InvalidIdentity, LookupIndexError
from lookup_index.normalise import Identity, canonical_identity

#: Fixed so a seed gives the same file whatever day it runs.
LATEST_BIRTH_DATE = date(2025, 12, 31)
EXPORT_COLUMNS = ("nir", "birth_date", "last_name", "usage_name", "categories")
PROBE_COLUMNS = ("nir", "birth_date", "last_name", "expected", "categories", "reason")

_OVERSEAS = ("971", "972", "973", "974", "976")
# INSEE country codes (99 + 3 digits): Algeria, Morocco, Tunisia, Portugal, Spain, Italy,
# Germany, Belgium, Senegal, Vietnam, Turkey, United Kingdom.
_COUNTRIES = ("352", "350", "351", "139", "134", "127", "109", "131", "341", "243", "208", "132")
_EXTRA_CATEGORIES = ("contact", "address", "phone", "email", "clinical_notes")


@dataclass(slots=True)
class _Person:
    nir: str  # 15 characters, canonical spelling
    born: date
    last_name: str
    usage_name: str
    mask: int
    categories: str  # as exported (empty: the incident default)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


class SyntheticPopulation:
    """Draws French identities; one instance per output, seeded."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._faker = Faker("fr_FR")
        self._faker.seed_instance(seed)

    def birth_date(self, earliest: date = date(1925, 1, 1)) -> date:
        span = (LATEST_BIRTH_DATE - earliest).days
        return earliest + timedelta(days=self.rng.randrange(span))

    def last_name(self) -> str:
        name: str = self._faker.last_name()
        if self.rng.random() < 0.04:
            name = f"{name}-{self._faker.last_name()}"
        return name

    def _place(self) -> str:
        r = self.rng.random()
        if r < 0.04:
            return self.rng.choice(("2A", "2B")) + f"{self.rng.randint(1, 366):03d}"
        if r < 0.08:
            return self.rng.choice(_OVERSEAS) + f"{self.rng.randint(1, 34):02d}"
        if r < 0.14:
            return "99" + self.rng.choice(_COUNTRIES)
        department = self.rng.choice([d for d in range(1, 96) if d != 20])
        return f"{department:02d}{self.rng.randint(1, 900):03d}"

    def nir(self, sex: int, born: date) -> str:
        r = self.rng.random()
        if r < 0.01:
            month = self.rng.choice((20, 50, 99))  # month unknown at registration
        elif r < 0.015:
            month = born.month + 30  # the "31-42" convention for some registrations
        else:
            month = born.month
        sex_digit = sex if self.rng.random() > 0.01 else sex + 6  # 7/8: temporary numbers
        order = self.rng.randint(1, 999)
        body = f"{sex_digit}{born.year % 100:02d}{month:02d}{self._place()}{order:03d}"
        return body + stdnum_nir.calc_check_digits(body)

    def person(self) -> _Person:
        sex = self.rng.choice((1, 2))
        born = self.birth_date()
        last_name = self.last_name()
        usage_name = ""
        if sex == 2 and self.rng.random() < 0.15 and born < date(2000, 1, 1):
            usage_name = self.last_name()
        categories = ""
        if self.rng.random() < 0.2:
            chosen = {*DEFAULT_INCIDENT_CATEGORIES, *self.rng.sample(_EXTRA_CATEGORIES, 2)}
            categories = ";".join(c for c in CATEGORIES if c in chosen)
        mask = (
            mask_of(categories.split(";")) if categories else mask_of(DEFAULT_INCIDENT_CATEGORIES)
        )
        return _Person(self.nir(sex, born), born, last_name, usage_name, mask, categories)

    def child_of(self, parent: _Person) -> _Person:
        """A child recorded under the insured parent's NIR and family name."""
        earliest = min(date(parent.born.year + 18, 1, 1), LATEST_BIRTH_DATE - timedelta(days=400))
        born = self.birth_date(max(earliest, date(2000, 1, 1)))
        return _Person(parent.nir, born, parent.last_name, "", parent.mask, parent.categories)

    # --- export noise -------------------------------------------------------------
    def noisy_nir(self, nir: str) -> str:
        r = self.rng.random()
        if r < 0.3:
            return " ".join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))
        if r < 0.35:
            return ".".join((nir[:5], nir[5:10], nir[10:13], nir[13:]))
        if r < 0.4:
            return nir.lower()
        return nir

    def noisy_name(self, name: str) -> str:
        r = self.rng.random()
        if r < 0.15:
            name = name.lower()
        elif r < 0.3:
            name = name.upper()
        if self.rng.random() < 0.2:
            name = _strip_accents(name)
        if "-" in name and self.rng.random() < 0.5:
            name = name.replace("-", " ")
        return name

    def noisy_date(self, born: date) -> str:
        return born.strftime("%d/%m/%Y") if self.rng.random() < 0.4 else born.isoformat()

    def invalid_row(self) -> tuple[dict[str, str], str]:
        """A row an export really contains and the builder must reject, with its reason."""
        person = self.person()
        base = {
            "nir": person.nir,
            "birth_date": person.born.isoformat(),
            "last_name": person.last_name,
            "usage_name": "",
            "categories": "",
        }
        kind = self.rng.randrange(5)
        if kind == 0:
            key = (int(person.nir[13:]) % 97) + 1
            base["nir"] = person.nir[:13] + f"{key:02d}"
            return base, "nir_key"
        if kind == 1:
            base["nir"] = person.nir[:12]
            return base, "nir_format"
        if kind == 2:
            base["nir"] = "5" + person.nir[1:13]
            base["nir"] += stdnum_nir.calc_check_digits(base["nir"])
            return base, "nir_range"
        if kind == 3:
            base["birth_date"] = f"31/02/{person.born.year}"
            return base, "birth_date"
        base["last_name"] = self.rng.choice(("", "-", "' '", "..."))
        return base, "last_name"


def _identity(nir: str, born: date, name: str) -> Identity:
    return canonical_identity(nir, born.isoformat(), name, today=LATEST_BIRTH_DATE)


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    rows: int
    invalid_rows: int
    children: int
    usage_names: int
    probes: int


def generate(
    rows: int,
    seed: int,
    out: Path,
    probes_out: Path | None = None,
    probes: int | None = None,
) -> GenerateSummary:
    """Write an export of ``rows`` rows and, optionally, a probes file with expected answers."""
    if rows < 1:
        raise LookupIndexError("--rows must be at least 1")
    population = SyntheticPopulation(seed)
    index: dict[bytes, int] = {}  # canonical -> merged mask, to derive probe answers
    sample: list[_Person] = []
    sample_size = probes if probes is not None else min(rows, 2000)
    adults: list[_Person] = []
    counts = {"invalid": 0, "children": 0, "usage": 0}
    rng = random.Random(seed ^ 0x5EED)
    seen = 0
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=";" if seed % 2 else ",")
            writer.writerow(EXPORT_COLUMNS)
            for row in _rows(population, rows, adults, counts):
                if isinstance(row, tuple):
                    writer.writerow([row[0][c] for c in EXPORT_COLUMNS])
                    continue
                for name in filter(None, (row.last_name, row.usage_name)):
                    key = _identity(row.nir, row.born, name).canonical()
                    index[key] = index.get(key, 0) | row.mask
                seen += 1
                if len(sample) < sample_size:
                    sample.append(row)
                elif (j := rng.randrange(seen)) < sample_size:
                    sample[j] = row  # reservoir sampling: probes spread over the whole file
                writer.writerow(
                    (
                        population.noisy_nir(row.nir),
                        population.noisy_date(row.born),
                        population.noisy_name(row.last_name),
                        population.noisy_name(row.usage_name) if row.usage_name else "",
                        row.categories,
                    )
                )
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    written = 0
    if probes_out is not None:
        written = _write_probes(population, probes_out, sample, index, rng)
    return GenerateSummary(rows, counts["invalid"], counts["children"], counts["usage"], written)


def _rows(
    population: SyntheticPopulation, rows: int, adults: list[_Person], counts: dict[str, int]
) -> Iterator[_Person | tuple[dict[str, str], str]]:
    rng = population.rng
    for _ in range(rows):
        r = rng.random()
        if r < 0.005:
            counts["invalid"] += 1
            yield population.invalid_row()
        elif r < 0.035 and adults:
            counts["children"] += 1
            yield population.child_of(rng.choice(adults))
        else:
            person = population.person()
            counts["usage"] += bool(person.usage_name)
            if person.born.year < 1990 and len(adults) < 10_000:
                adults.append(person)
            yield person


def _write_probes(
    population: SyntheticPopulation,
    path: Path,
    sample: list[_Person],
    index: dict[bytes, int],
    rng: random.Random,
) -> int:
    lines: list[tuple[str, str, str, str, str, str]] = []
    for person in sample:
        name = person.usage_name if person.usage_name and rng.random() < 0.5 else person.last_name
        key = _identity(person.nir, person.born, name).canonical()
        exposed = ";".join(names_of(index[key]))
        nir = population.noisy_nir(person.nir)
        lines.append(
            (nir, person.born.isoformat(), population.noisy_name(name), "affected", exposed, "")
        )
    for _ in range(len(sample) * 7 // 10 + 1):
        person = population.person()
        if rng.random() < 0.3 and sample:
            # A near miss: a real patient's NIR and name with another birth date.
            known = rng.choice(sample)
            person.nir, person.last_name = known.nir, known.last_name
        key = _identity(person.nir, person.born, person.last_name).canonical()
        if key in index:
            continue
        lines.append((person.nir, person.born.isoformat(), person.last_name, "not_found", "", ""))
    for _ in range(len(sample) * 3 // 10 + 1):
        row, reason = population.invalid_row()
        if reason == "birth_date":
            row["birth_date"] = "1990-02-31"
        lines.append((row["nir"], row["birth_date"], row["last_name"], "invalid", "", reason))
    rng.shuffle(lines)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PROBE_COLUMNS)
        writer.writerows(lines)
    tmp.replace(path)
    return len(lines)


@dataclass(frozen=True, slots=True)
class Probe:
    nir: str
    birth_date: str
    last_name: str
    expected: str
    categories: tuple[str, ...]
    reason: str


def read_probes(path: Path) -> list[Probe]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            Probe(
                r["nir"],
                r["birth_date"],
                r["last_name"],
                r["expected"],
                tuple(filter(None, r["categories"].split(";"))),
                r["reason"],
            )
            for r in csv.DictReader(handle)
        ]


__all__ = ["GenerateSummary", "InvalidIdentity", "Probe", "generate", "read_probes"]
