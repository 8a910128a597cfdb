"""Identity normalisation shared by the index builder and the API.

One function, :func:`canonical_identity`, turns what a practice exported or
what a patient typed into the exact bytes that get hashed. Builder and API
both call it, so they can never disagree on a spelling.

Version 2 of the canonical form is tolerant where patients and practices
differ most (issue 14, measured by ``lookup-index recall``): leading particles
written apart (``de La Fontaine``, ``D'Almeida``) are dropped, the German
transliterations ``AE``/``OE``/``UE`` fold like the umlauts they stand for,
and a birth date may carry ``00`` for an unknown day or month. What cannot be
folded on the query side (one part of a compound name, a particle typed glued)
the builder covers with a few extra keys (:func:`name_forms`).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from stdnum.exceptions import ValidationError
from stdnum.fr import nir as stdnum_nir

from lookup_index.exceptions import InvalidIdentity

#: Prefix of the hashed bytes and the index header's ``build.canonical``: an index made
#: with other rules would answer "not found" for names they fold differently.
CANONICAL_VERSION = "v2"
EARLIEST_BIRTH_DATE = date(1890, 1, 1)
MAX_NAME_LENGTH = 100
#: Raw NIR input may carry separators; anything longer than this is not a NIR.
MAX_NIR_INPUT_LENGTH = 40

# sex, year, month, department (2 digits or 2A/2B), 6 digits commune+order, 2 key digits.
_NIR_SHAPE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# Export spellings (builder only): D/M/YYYY or DD/MM/YYYY, ISO, and a midnight time suffix.
_FRENCH_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_TWO_DIGIT_YEAR = re.compile(r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{2}")
_WITH_MIDNIGHT = re.compile(r"(.+?)[ T]00:00(?::00(?:\.0+)?)?")
_NOT_A_TO_Z = re.compile(r"[^A-Z]+")
#: Kinds of the builder's extra name keys (the header's ``records.variant_keys``).
PARTICLE_FORM = "particles_glued"
NAME_PART = "name_part"
#: Particles dropped when written apart at the start of a name (de, du, des, de la, d', le, la).
PARTICLES = frozenset({"DE", "DU", "DES", "D", "LA", "LE", "LES", "L"})
# German transliterations of Ä, Ö, Ü: folded so Mueller, Müller and Muller meet.
_DIGRAPHS = re.compile(r"([AOU])E+")

_SEX_DIGITS = frozenset("123478")
# Letters NFKD cannot split into base letter + accent, folded the way French
# civil registries transcribe them.
_LETTER_FOLDS = str.maketrans(
    {
        "Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS", "ẞ": "SS",
        "Ø": "O", "ø": "O", "Ł": "L", "ł": "L", "Đ": "D", "đ": "D",
        "Þ": "TH", "þ": "TH", "Ð": "D", "ð": "D", "ı": "I",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, order=True)
class BirthDate:
    """A birth date whose day, or day and month, may be unknown (``0``, written ``00``).

    Foreign-born patients often have ``00/00/1950`` or ``00/03/1950`` on their papers.
    ``00`` is kept as such in the canonical bytes, so it matches only a date recorded
    as unknown, never a known day (siblings under one NIR stay apart).
    """

    year: int
    month: int
    day: int

    @classmethod
    def of(cls, known: date) -> BirthDate:
        return cls(known.year, known.month, known.day)

    @property
    def known(self) -> bool:
        return bool(self.month and self.day)

    def isoformat(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A validated, normalised identity. ``nir`` is the 13 characters without the key."""

    nir: str
    birth_date: BirthDate
    last_name: str
    #: :func:`bucket_name` of the typed name: what the per-identity limits count.
    bucket_name: str = ""

    def canonical(self) -> bytes:
        return "|".join(
            (CANONICAL_VERSION, self.nir, self.birth_date.isoformat(), self.last_name)
        ).encode("ascii")

    def with_last_name(self, last_name: str) -> Identity:
        return Identity(
            self.nir, self.birth_date, normalise_last_name(last_name), bucket_name(last_name)
        )

    def with_name_form(self, form: str) -> Identity:
        """The same identity under another already-folded name form (a builder variant key)."""
        return Identity(self.nir, self.birth_date, form, self.bucket_name)


def _is_nir_separator(char: str) -> bool:
    # Spaces of any width (NBSP, thin space...), dashes of any length (hyphen, en dash,
    # minus sign...) and dots: what exports and keyboards put between NIR groups.
    return char.isspace() or char in ".\u2212" or unicodedata.category(char) in ("Zs", "Pd", "Cf")


def normalise_nir(raw: str) -> str:
    """Validate a 15-character NIR (separators allowed) and return its 13-character body."""
    if len(raw) > MAX_NIR_INPUT_LENGTH:
        raise InvalidIdentity("nir_format")
    nir = "".join(c for c in raw if not _is_nir_separator(c)).upper()
    if not _NIR_SHAPE.fullmatch(nir):
        raise InvalidIdentity("nir_format")
    _check_nir_ranges(nir)
    try:
        stdnum_nir.validate(nir)
    except ValidationError:
        raise InvalidIdentity("nir_key") from None
    if not 1 <= int(nir[13:]) <= 97:
        raise InvalidIdentity("nir_key")
    return nir[:13]


def _check_nir_ranges(nir: str) -> None:
    """The structural rules python-stdnum does not check."""
    month = int(nir[3:5])
    if (
        nir[0] not in _SEX_DIGITS
        or not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99)
        or nir[10:13] == "000"
    ):
        raise InvalidIdentity("nir_range")


def parse_birth_date(
    raw: str, *, allow_french: bool = False, today: date | None = None
) -> BirthDate:
    """Parse ``YYYY-MM-DD`` (``YYYY-MM-00``, ``YYYY-00-00`` for an unknown day or month).

    ``allow_french`` is the builder's export mode: also ``D/M/YYYY`` and ``DD/MM/YYYY``
    (``00`` allowed the same way), and a midnight time after either. A two-digit year is
    refused with its own reason: the century cannot be guessed for a birth date.
    """
    text = raw.strip()
    if allow_french and (timed := _WITH_MIDNIGHT.fullmatch(text)):
        text = timed.group(1)
    if match := _ISO_DATE.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
    elif allow_french and (match := _FRENCH_DATE.fullmatch(text)):
        day, month, year = (int(g) for g in match.groups())
    elif allow_french and _TWO_DIGIT_YEAR.fullmatch(text):
        raise InvalidIdentity("birth_date_two_digit_year")
    else:
        raise InvalidIdentity("birth_date")
    latest = today or date.today()
    if day == 0:  # unknown day (and maybe month): only the year and month can be checked
        if not (0 <= month <= 12 and EARLIEST_BIRTH_DATE.year <= year <= latest.year):
            raise InvalidIdentity("birth_date")
        if (year, month) > (latest.year, latest.month):
            raise InvalidIdentity("birth_date")
        return BirthDate(year, month, 0)
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidIdentity("birth_date") from None
    if not EARLIEST_BIRTH_DATE <= born <= latest:
        raise InvalidIdentity("birth_date")
    return BirthDate.of(born)


def name_tokens(raw: str) -> list[str]:
    """The name's words, folded to A-Z: what separators (space, hyphen, apostrophe) delimit.

    NFKC, accents and ligatures folded, upper-cased. A letter the folding cannot bring
    to A-Z (Cyrillic, Greek, CJK...) makes the name invalid: dropping it would look up
    another name and answer a false "not found". Digits and modifier letters (``ʼ``, an
    apostrophe typed on some keyboards) separate words like any other non-letter.
    """
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidIdentity("last_name")
    text = unicodedata.normalize("NFKC", raw).translate(_LETTER_FOLDS)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # Upper-casing can reintroduce letters to fold (e.g. "ß".upper() is already "SS").
    text = text.upper().translate(_LETTER_FOLDS)
    if any(_is_foreign_letter(c) for c in text):
        raise InvalidIdentity("last_name")
    tokens = [t for t in _NOT_A_TO_Z.split(text) if t]
    if not tokens:
        raise InvalidIdentity("last_name")
    return tokens


def _fold(text: str) -> str:
    return _DIGRAPHS.sub(r"\1", text)


def _without_particles(tokens: list[str]) -> list[str]:
    """Leading particles dropped, unless nothing would remain (the surname Le, Lê...)."""
    first = 0
    while first < len(tokens) - 1 and tokens[first] in PARTICLES:
        first += 1
    return tokens[first:]


def normalise_last_name(raw: str) -> str:
    """The canonical name: words after leading particles, joined, ``AE/OE/UE`` folded.

    ``de La Fontaine``, ``La Fontaine`` and ``LA FONTAINE`` give ``FONTAINE``;
    ``Müller``, ``Mueller`` and ``MULLER`` give ``MULLER``. A particle typed glued to the
    name (``Lafontaine``) is another word; the builder writes that form as a variant key.
    """
    return _fold("".join(_without_particles(name_tokens(raw))))


def name_forms(raw: str) -> dict[str, str]:
    """Extra folded forms of a recorded name a patient may type, by variant kind.

    ``particles_glued``: the particles typed glued to the name (``DELAFONTAINE`` and
    ``LAFONTAINE`` for ``de La Fontaine``); ``name_part``: each word of a compound name
    (``MARTIN`` and ``DURAND`` for ``MARTIN-DURAND``). The canonical form itself is not
    repeated; forms are unique, mapped to the first kind that produced them.
    """
    tokens = name_tokens(raw)
    core = _without_particles(tokens)
    canonical = _fold("".join(core))
    forms: dict[str, str] = {}
    for start in range(len(tokens) - len(core)):
        forms.setdefault(_fold("".join(tokens[start:])), PARTICLE_FORM)
    if tokens[0] == "LA" and len(tokens) > 1:
        # "LA FONTAINE" is often "de La Fontaine" whose "de" was lost at registration.
        forms.setdefault(_fold("DE" + "".join(tokens)), PARTICLE_FORM)
    if len(core) > 1:
        for part in core:
            if len(part) > 1 and part not in PARTICLES:
                forms.setdefault(_fold(part), NAME_PART)
    if len(core) > 2:
        # A part of several words: "Dos Santos" in "Vasseur-Dos Santos".
        for first, second in itertools.pairwise(core):
            forms.setdefault(_fold(first + second), NAME_PART)
    forms.pop(canonical, None)
    return forms


_GLUED_PARTICLES = ("DES", "DE", "DU", "LA", "LE", "D", "L")


def bucket_name(raw: str) -> str:
    """A coarse form of a typed name for the per-identity rate-limit buckets, not matching.

    Every typing of one name should count against one bucket: the first word after the
    particles, with particles typed glued also peeled off (``Delafontaine``, ``de La
    Fontaine`` and ``Fontaine`` all give ``FONTAINE``). Only another part of a compound
    name, or its parts typed glued, give another bucket.
    """
    word = _fold(_without_particles(name_tokens(raw))[0])
    peeled = True
    while peeled:
        peeled = False
        for particle in _GLUED_PARTICLES:
            if word.startswith(particle) and len(word) - len(particle) >= 3:
                word, peeled = word[len(particle) :], True
                break
    return word


def _is_foreign_letter(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "L" and category != "Lm" and not ("A" <= char <= "Z")


def nir_matches_birth_date(nir: str, born: date | BirthDate) -> bool:
    """Whether a NIR's year and month agree with a birth date.

    A mismatch is *not* an error: practices often record a child under the
    insured parent's NIR. Builders count it; the widget shows a hint. An unknown
    birth month agrees with any NIR month of the right year.
    """
    if int(nir[1:3]) != born.year % 100:
        return False
    month = int(nir[3:5])
    if born.month == 0:
        return True
    if 1 <= month <= 12:
        return month == born.month
    if 31 <= month <= 42:
        return month == born.month + 30
    # 20-30 and 50-99: month unknown at registration, matches any month.
    return 20 <= month <= 30 or 50 <= month <= 99


def canonical_identity(
    nir: str,
    birth_date: str,
    last_name: str,
    *,
    allow_french_dates: bool = False,
    today: date | None = None,
) -> Identity:
    """Validate and normalise the three fields; raises :class:`InvalidIdentity`."""
    return Identity(
        nir=normalise_nir(nir),
        birth_date=parse_birth_date(birth_date, allow_french=allow_french_dates, today=today),
        last_name=normalise_last_name(last_name),
        bucket_name=bucket_name(last_name),
    )
