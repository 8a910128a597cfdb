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
from lookup_index.patient_typings import Patient, Surname, Typing, TypingWriter, write_typings

#: Fixed so a seed gives the same file whatever day it runs.
LATEST_BIRTH_DATE = date(2025, 12, 31)
EXPORT_COLUMNS = ("nir", "birth_date", "last_name", "usage_name", "categories")
PROBE_COLUMNS = ("nir", "birth_date", "last_name", "expected", "categories", "reason")

_OVERSEAS = ("971", "972", "973", "974", "976")
# INSEE country codes (99 + 3 digits): Algeria, Morocco, Tunisia, Portugal, Spain, Italy,
# Germany, Belgium, Senegal, Vietnam, Turkey, United Kingdom.
_COUNTRIES = ("352", "350", "351", "139", "134", "127", "109", "131", "341", "243", "208", "132")
_EXTRA_CATEGORIES = ("contact", "address", "phone", "email", "clinical_notes")
# Names Faker's French list lacks but French registers hold: particles, apostrophes,
# foreign-born patients' diacritics, ligatures (issue 14: the gaps exact matching had).
_PARTICLE_NAMES = {
    "de": ("Gaulle", "Villiers", "Montfort", "Rochefort", "Vigny", "Saint-Exupéry", "Broglie"),
    "de la": ("Fontaine", "Rochefoucauld", "Tour", "Motte", "Haye", "Rivière"),
    "d'": ("Almeida", "Arcy", "Aubigné", "Artois", "Estienne", "Orléans", "Hérouville"),
    "du": ("Pont", "Bois", "Bellay", "Moulin", "Plessis", "Châtelet"),
    "des": ("Champs", "Rosiers", "Granges", "Cars", "Essarts"),
    "le": ("Goff", "Gall", "Bihan", "Roux", "Floch", "Brun", "Corre"),
    "la": ("Fontaine", "Porte", "Rue", "Salle", "Croix"),
}
_APOSTROPHE_NAMES = ("N'Diaye", "N'Guessan", "N'Dour", "M'Bappé", "M'Bow", "N'Doye", "O'Neill")
_FOREIGN_NAMES = (
    "Müller", "Schröder", "Köhler", "Jäger", "Günther", "Strauß", "Bäcker", "Löwe", "Krüger",
    "Muñoz", "Peña", "Núñez", "Gonçalves", "Simões", "Magalhães", "Conceição", "Şahin",
    "Yılmaz", "Doğan", "Öztürk", "Nguyễn", "Trần", "Phạm", "Lê", "Łukasiewicz", "Dvořák",
)  # fmt: skip
_LIGATURE_NAMES = ("Lœuillet", "Cœurdevey", "Bœuf", "Vœux", "Lætitia", "Cæsar")
_UMLAUTS = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE"}


@dataclass(slots=True)
class _Person:
    nir: str  # 15 characters, canonical spelling
    born: date
    last_name: str
    usage_name: str
    mask: int
    categories: str  # as exported (empty: the incident default)
    surname: Surname
    usage: Surname | None = None
    #: 0: the date is known; 1: the day is unknown; 2: the day and month are unknown.
    unknown: int = 0

    @property
    def iso(self) -> str:
        """The birth date as recorded, ``00`` for what the person's papers do not know."""
        if self.unknown == 2:
            return f"{self.born.year:04d}-00-00"
        if self.unknown == 1:
            return f"{self.born.year:04d}-{self.born.month:02d}-00"
        return self.born.isoformat()

    def patient(self) -> Patient:
        month = 0 if self.unknown == 2 else self.born.month
        day = 0 if self.unknown else self.born.day
        return Patient(self.nir, self.born.year, month, day, self.surname, self.usage)


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

    def surname(self) -> Surname:
        r = self.rng.random()
        if r < 0.05:
            particle = self.rng.choice(sorted(_PARTICLE_NAMES))
            return Surname(particle, (self.rng.choice(_PARTICLE_NAMES[particle]),))
        if r < 0.07:
            return Surname("", (self.rng.choice(_APOSTROPHE_NAMES),))
        if r < 0.11:
            return Surname("", (self.rng.choice(_FOREIGN_NAMES),))
        if r < 0.12:
            return Surname("", (self.rng.choice(_LIGATURE_NAMES),))
        name: str = self._faker.last_name()
        if self.rng.random() < 0.07:
            joiner = "-" if self.rng.random() < 0.7 else " "
            return Surname("", (name, self._faker.last_name()), joiner)
        return Surname("", (name,))

    def last_name(self) -> str:
        return self.surname().written()

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

    def nir(self, sex: int, born: date, month_unknown: bool = False) -> str:
        r = self.rng.random()
        if month_unknown:
            month = self.rng.choice((20, 30, 50, 99))  # unknown by construction
        elif r < 0.01:
            month = self.rng.choice((20, 50, 99))  # month unknown at registration
        elif r < 0.015:
            month = born.month + 30  # the "31-42" convention for some registrations
        else:
            month = born.month
        sex_digit = sex if self.rng.random() > 0.01 else sex + 6  # 7/8: temporary numbers
        order = self.rng.randint(1, 999)
        place = "99" + self.rng.choice(_COUNTRIES) if month_unknown else self._place()
        body = f"{sex_digit}{born.year % 100:02d}{month:02d}{place}{order:03d}"
        return body + stdnum_nir.calc_check_digits(body)

    def person(self) -> _Person:
        sex = self.rng.choice((1, 2))
        born = self.birth_date()
        surname = self.surname()
        usage: Surname | None = None
        if sex == 2 and self.rng.random() < 0.15 and born < date(2000, 1, 1):
            usage = self.surname()
        # Born abroad with papers that lack the day (or day and month): about 2 % of records.
        r = self.rng.random()
        unknown = 2 if r < 0.012 else 1 if r < 0.02 else 0
        categories = ""
        if self.rng.random() < 0.2:
            chosen = {*DEFAULT_INCIDENT_CATEGORIES, *self.rng.sample(_EXTRA_CATEGORIES, 2)}
            categories = ";".join(c for c in CATEGORIES if c in chosen)
        mask = (
            mask_of(categories.split(";")) if categories else mask_of(DEFAULT_INCIDENT_CATEGORIES)
        )
        return _Person(
            self.nir(sex, born, month_unknown=unknown == 2),
            born,
            surname.written(),
            usage.written() if usage else "",
            mask,
            categories,
            surname,
            usage,
            unknown,
        )

    def child_of(self, parent: _Person) -> _Person:
        """A child recorded under the insured parent's NIR and family name."""
        earliest = min(date(parent.born.year + 18, 1, 1), LATEST_BIRTH_DATE - timedelta(days=400))
        born = self.birth_date(max(earliest, date(2000, 1, 1)))
        return _Person(
            parent.nir, born, parent.last_name, "", parent.mask, parent.categories, parent.surname
        )

    # --- export noise -------------------------------------------------------------
    def noisy_nir(self, nir: str) -> str:
        r = self.rng.random()
        groups = (nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:])
        if r < 0.3:
            return " ".join(groups)
        if r < 0.35:
            return ".".join((nir[:5], nir[5:10], nir[10:13], nir[13:]))
        if r < 0.4:
            return nir.lower()
        if r < 0.43:
            return "\u2013".join(groups)  # en dash, as word processors turn a hyphen
        if r < 0.45:
            return "\u00a0".join(groups)  # no-break spaces from a spreadsheet
        return nir

    def export_name(self, surname: Surname) -> str:
        """How a practice recorded a name: sometimes without the "de" of "de la", or with
        umlauts transliterated; then the casing and accent noise of :meth:`noisy_name`."""
        name = surname.written()
        if surname.particle == "de la" and self.rng.random() < 0.1:
            name = name[3:]  # LA FONTAINE: the "de" lost at registration
        if any(c in _UMLAUTS for c in name) and self.rng.random() < 0.2:
            name = "".join(_UMLAUTS.get(c, c) for c in name)
        return self.noisy_name(name)

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

    def noisy_date(self, person: _Person) -> str:
        """The export spellings of a date: ISO, DD/MM/YYYY, D/M/YYYY, a midnight time."""
        year, month, day = (int(p) for p in person.iso.split("-"))
        r = self.rng.random()
        if r < 0.35:
            text = f"{day:02d}/{month:02d}/{year:04d}"
        elif r < 0.45:
            text = f"{day}/{month}/{year:04d}"
        else:
            text = person.iso
        if self.rng.random() < 0.1:
            text += " 00:00:00"
        return text

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


def _identity(nir: str, born: str, name: str) -> Identity:
    return canonical_identity(nir, born, name, today=LATEST_BIRTH_DATE)


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    rows: int
    invalid_rows: int
    children: int
    usage_names: int
    probes: int
    typings: int = 0


def generate(
    rows: int,
    seed: int,
    out: Path,
    probes_out: Path | None = None,
    probes: int | None = None,
    variants_out: Path | None = None,
    variant_records: int | None = None,
) -> GenerateSummary:
    """Write an export of ``rows`` rows and, optionally, a probes file with expected answers
    and a variants file: how the patients of ``variant_records`` records type themselves,
    and near misses (``lookup-index recall``)."""
    if rows < 1:
        raise LookupIndexError("--rows must be at least 1")
    population = SyntheticPopulation(seed)
    index: dict[bytes, int] = {}  # canonical -> merged mask, to derive probe answers
    # (NIR body, date as recorded) of every record: a near miss must not be a real record.
    recorded: set[tuple[str, str]] = set()
    sample: list[_Person] = []
    sample_size = probes if probes is not None else min(rows, 2000)
    typed: list[_Person] = []
    typed_size = variant_records if variant_records is not None else min(rows, 2000)
    typed_rng = random.Random(seed ^ 0x7E57)
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
                    key = _identity(row.nir, row.iso, name).canonical()
                    index[key] = index.get(key, 0) | row.mask
                recorded.add((row.nir[:13], row.iso))
                seen += 1
                if len(sample) < sample_size:
                    sample.append(row)
                elif (j := rng.randrange(seen)) < sample_size:
                    sample[j] = row  # reservoir sampling: probes spread over the whole file
                if len(typed) < typed_size:
                    typed.append(row)
                elif (j := typed_rng.randrange(seen)) < typed_size:
                    typed[j] = row
                writer.writerow(
                    (
                        population.noisy_nir(row.nir),
                        population.noisy_date(row),
                        population.export_name(row.surname),
                        population.export_name(row.usage) if row.usage else "",
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
    typings = 0
    if variants_out is not None:
        typings = write_typings(variants_out, _typings(typed, recorded, seed))
    return GenerateSummary(
        rows, counts["invalid"], counts["children"], counts["usage"], written, typings
    )


def _typings(people: list[_Person], recorded: set[tuple[str, str]], seed: int) -> Iterator[Typing]:
    """Every typing of each sampled record, and its near misses that are no real record."""
    writer = TypingWriter(seed)
    for number, person in enumerate(people):
        yield from writer.matches(person.patient())
        other = people[(number + 1 + writer.rng.randrange(max(len(people) - 1, 1))) % len(people)]
        if other.nir == person.nir:
            continue
        for miss in writer.near_misses(person.patient(), other.nir):
            year = int(miss.birth_date[:4])
            known = (miss.nir.upper()[:13], miss.birth_date) in recorded
            if not known and 1890 <= year <= LATEST_BIRTH_DATE.year:
                yield miss


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
        key = _identity(person.nir, person.iso, name).canonical()
        exposed = ";".join(names_of(index[key]))
        nir = population.noisy_nir(person.nir)
        lines.append((nir, person.iso, population.noisy_name(name), "affected", exposed, ""))
    for _ in range(len(sample) * 7 // 10 + 1):
        person = population.person()
        if rng.random() < 0.3 and sample:
            # A near miss: a real patient's NIR and name with another birth date.
            known = rng.choice(sample)
            person.nir, person.last_name = known.nir, known.last_name
        key = _identity(person.nir, person.iso, person.last_name).canonical()
        if key in index:
            continue
        lines.append((person.nir, person.iso, person.last_name, "not_found", "", ""))
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
