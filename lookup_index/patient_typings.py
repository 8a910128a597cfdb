"""How patients plausibly type their identity, and near misses that must not match.

The recall harness (``lookup-index recall``) measures the matcher against what
this module writes, so it is written from real-world typing habits, never from
the matching code: it imports nothing from :mod:`lookup_index.normalise` and
shares no helper with it (a recall measured with the matcher's own folding
would prove nothing). The habits, one variant kind each:

- ``as_written``: the name as the person writes it, in any case;
- ``particles``: with the particle (``de La Fontaine``, ``D'Almeida``), glued
  (``Delafontaine``, ``Dalmeida``), or without it (``La Fontaine``, ``Fontaine``);
- ``compound_part``: one part of a compound name, or the parts with a space or a hyphen;
- ``transliteration``: no diacritics typed (é → e, ü → u), or the German way
  (ü → ue, ö → oe, ä → ae), ligatures as two letters (œ → oe), ß → ss;
- ``usage_name``: the usage (married) name instead of the birth name;
- ``nir_separators``: the NIR with spaces, dots, hyphens, en dashes or no-break spaces;
- ``unknown_date``: ``00`` for a day or month the person's papers do not know.

Near misses, which must be answered "not found":

- ``other_nir``: another person's NIR with this name and date;
- ``sibling_date``: this NIR and name with another date (a sibling under a parent's NIR);
- ``zero_for_known_date``: ``00`` typed for a day or month that is on record;
- ``nir_one_digit_off``: this name and date with a NIR one digit off, its key recomputed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MATCH_KINDS = (
    "as_written",
    "particles",
    "compound_part",
    "transliteration",
    "usage_name",
    "nir_separators",
    "unknown_date",
)
NEAR_MISS_KINDS = ("other_nir", "sibling_date", "zero_for_known_date", "nir_one_digit_off")
TYPING_COLUMNS = ("kind", "expected", "nir", "birth_date", "last_name")

# What people do with letters their keyboard or habit leaves out.
_PLAIN = str.maketrans(
    "àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸşŞğĞıİłŁńŃśŚźŹżŻćĆěĚřŘšŠžŽčČ",
    "aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYYsSgGiIlLnNsSzZzZcCeErRsSzZcC",
)
_TWO_LETTERS = {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS"}
_GERMAN = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE"}
_VIETNAMESE_TONES = str.maketrans(
    "ễếềểệạảấầẩẫậắằẳẵặẹẻẽịỉĩọỏốồổỗộớờởỡợơụủứừửữựưỳỵỷỹđ",
    "eeeeeaaaaaaaaaaaaeeeiiiooooooooooooouuuuuuuuyyyyd",
)


@dataclass(frozen=True, slots=True)
class Surname:
    """A surname as its bearer writes it: particle words, parts, and how parts are joined."""

    particle: str  # "", "de", "de la", "d'", "du", "des", "le", "la"
    parts: tuple[str, ...]  # with diacritics, as on the person's papers
    joiner: str = "-"

    def written(self) -> str:
        return _with_particle(self.particle, self.joiner.join(self.parts))


@dataclass(frozen=True, slots=True)
class Patient:
    """What the generator knows of a person: the truth the typings start from."""

    nir: str  # 15 characters
    year: int
    month: int  # 0: unknown
    day: int  # 0: unknown
    birth_name: Surname
    usage_name: Surname | None = None

    def date(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class Typing:
    kind: str
    expected: str  # "match" or "no_match"
    nir: str
    birth_date: str
    last_name: str

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.kind, self.expected, self.nir, self.birth_date, self.last_name)


def _with_particle(particle: str, rest: str) -> str:
    if not particle:
        return rest
    return particle + rest if particle.endswith("'") else f"{particle} {rest}"


def _any_case(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.3:
        return text.upper()
    if r < 0.5:
        return text.lower()
    return text


def nir_key(body: str) -> str:
    """The two key digits of a 13-character NIR body (Corsica: 2A counts as 19, 2B as 18)."""
    number = int(body.upper().replace("2A", "19").replace("2B", "18"))
    return f"{97 - number % 97:02d}"


def _spaced_nir(rng: random.Random, nir: str) -> str:
    groups = (nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:])
    separator = rng.choice((" ", ".", "-", "\u2013", "\u00a0", " - ", "\u2009"))
    text = separator.join(groups)
    return text.lower() if rng.random() < 0.2 else text


class TypingWriter:
    """Draws the typings of one patient; seeded, so a file is reproducible."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def matches(self, patient: Patient) -> Iterator[Typing]:
        rng, name = self.rng, patient.birth_name
        date, nir = patient.date(), patient.nir

        def typed(kind: str, last_name: str, nir_text: str = nir) -> Typing:
            return Typing(kind, "match", nir_text, date, last_name)

        unknown = not (patient.month and patient.day)
        yield typed("unknown_date" if unknown else "as_written", _any_case(rng, name.written()))
        yield typed("nir_separators", name.written(), _spaced_nir(rng, nir))
        if name.particle:
            yield from (typed("particles", n) for n in self._particles(name))
        if len(name.parts) > 1:
            yield from (typed("compound_part", n) for n in self._parts(name))
        if any(not c.isascii() for c in name.written()):
            yield from (typed("transliteration", n) for n in self._ascii(name.written()))
        if patient.usage_name is not None:
            usage = patient.usage_name.written()
            yield typed("usage_name", _any_case(rng, usage))
            if len(patient.usage_name.parts) > 1:
                yield typed("usage_name", rng.choice(patient.usage_name.parts))

    def _particles(self, name: Surname) -> list[str]:
        rest = name.joiner.join(name.parts)
        words = name.particle.replace("'", "' ").split()
        spaced = _with_particle(name.particle, rest)
        glued = "".join(w.rstrip("'") for w in words) + rest.replace(" ", "")
        forms = [
            spaced.title() if self.rng.random() < 0.5 else spaced,  # De La Fontaine
            glued.capitalize(),  # Delafontaine, Dalmeida
            rest,  # Fontaine, Almeida: the particle left out
        ]
        if len(words) > 1:
            forms.append(_with_particle(" ".join(words[1:]), rest).title())  # La Fontaine
        if name.particle.endswith("'"):
            forms.append(name.particle[:-1] + " " + rest)  # D Almeida
        return [_any_case(self.rng, f) for f in forms]

    def _parts(self, name: Surname) -> list[str]:
        forms = [_with_particle(name.particle, p) for p in name.parts]
        other = " " if name.joiner == "-" else "-"
        forms.append(_with_particle(name.particle, other.join(name.parts)))
        return [_any_case(self.rng, f) for f in forms]

    def _ascii(self, text: str) -> list[str]:
        spelled = "".join(_TWO_LETTERS.get(c, c) for c in text)
        plain = spelled.translate(_VIETNAMESE_TONES).translate(_PLAIN)
        forms = [plain, plain.upper()]
        if any(c in _GERMAN for c in text):
            forms.append("".join(_GERMAN.get(c, c) for c in spelled).translate(_PLAIN))
        return forms

    def near_misses(self, patient: Patient, other_nir: str) -> Iterator[Typing]:
        rng, name = self.rng, patient.birth_name.written()
        date = patient.date()

        def miss(kind: str, nir: str, born: str) -> Typing:
            return Typing(kind, "no_match", nir, born, name)

        yield miss("other_nir", other_nir, date)
        year = patient.year + rng.choice((-4, -3, -2, 2, 3, 4))
        month = patient.month or rng.randint(1, 12)
        yield miss("sibling_date", patient.nir, f"{year:04d}-{month:02d}-{rng.randint(1, 28):02d}")
        if patient.day:
            yield miss("zero_for_known_date", patient.nir, f"{patient.year:04d}-00-00")
            yield miss("zero_for_known_date", patient.nir, date[:8] + "00")
        body = patient.nir[:13]
        position = rng.randrange(10, 13)
        digit = rng.choice([d for d in "0123456789" if d != body[position]])
        off = body[:position] + digit + body[position + 1 :]
        if off[10:13] != "000":
            yield miss("nir_one_digit_off", off + nir_key(off), date)


def write_typings(path: Path, typings: Iterable[Typing]) -> int:
    """Write the typings file (CSV) atomically; returns the number of rows."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(TYPING_COLUMNS)
            for typing in typings:
                writer.writerow(typing.row())
                count += 1
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def read_typings(path: Path) -> Iterator[Typing]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != TYPING_COLUMNS:
            raise ValueError("not a typings file: expected columns " + ",".join(TYPING_COLUMNS))
        for r in reader:
            yield Typing(r["kind"], r["expected"], r["nir"], r["birth_date"], r["last_name"])
