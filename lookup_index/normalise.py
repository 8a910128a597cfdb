"""Identity normalisation shared by the index builder and the API.

One function, :func:`canonical_identity`, turns what a practice exported or
what a patient typed into the exact bytes that get hashed. Builder and API
both call it, so they can never disagree on a spelling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from stdnum.exceptions import ValidationError
from stdnum.fr import nir as stdnum_nir

from lookup_index.exceptions import InvalidIdentity

CANONICAL_VERSION = "v1"
EARLIEST_BIRTH_DATE = date(1890, 1, 1)
MAX_NAME_LENGTH = 100
#: Raw NIR input may carry separators; anything longer than this is not a NIR.
MAX_NIR_INPUT_LENGTH = 40

_NIR_SEPARATORS = re.compile(r"[\s.\-]+")
# sex, year, month, department (2 digits or 2A/2B), 6 digits commune+order, 2 key digits.
_NIR_SHAPE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_FRENCH_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_NOT_A_TO_Z = re.compile(r"[^A-Z]+")

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


@dataclass(frozen=True, slots=True)
class Identity:
    """A validated, normalised identity. ``nir`` is the 13 characters without the key."""

    nir: str
    birth_date: date
    last_name: str

    def canonical(self) -> bytes:
        return "|".join(
            (CANONICAL_VERSION, self.nir, self.birth_date.isoformat(), self.last_name)
        ).encode("ascii")

    def with_last_name(self, last_name: str) -> Identity:
        return Identity(self.nir, self.birth_date, normalise_last_name(last_name))


def normalise_nir(raw: str) -> str:
    """Validate a 15-character NIR (separators allowed) and return its 13-character body."""
    if len(raw) > MAX_NIR_INPUT_LENGTH:
        raise InvalidIdentity("nir_format")
    nir = _NIR_SEPARATORS.sub("", raw).upper()
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


def parse_birth_date(raw: str, *, allow_french: bool = False, today: date | None = None) -> date:
    """Parse ``YYYY-MM-DD`` (also ``DD/MM/YYYY`` when ``allow_french``): a plausible birth date."""
    text = raw.strip()
    if match := _ISO_DATE.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
    elif allow_french and (match := _FRENCH_DATE.fullmatch(text)):
        day, month, year = (int(g) for g in match.groups())
    else:
        raise InvalidIdentity("birth_date")
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidIdentity("birth_date") from None
    if not EARLIEST_BIRTH_DATE <= born <= (today or date.today()):
        raise InvalidIdentity("birth_date")
    return born


def normalise_last_name(raw: str) -> str:
    """NFKC, fold accents and ligatures, upper-case, keep only A-Z.

    A letter the folding cannot bring to A-Z (Cyrillic, Greek, CJK...) makes the
    name invalid: dropping it would look up another name and answer a false
    "not found". Separators, digits and modifier letters (``ʼ``, an apostrophe
    typed on some keyboards) are dropped as before.
    """
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidIdentity("last_name")
    text = unicodedata.normalize("NFKC", raw).translate(_LETTER_FOLDS)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # Upper-casing can reintroduce letters to fold (e.g. "ß".upper() is already "SS").
    text = text.upper().translate(_LETTER_FOLDS)
    if any(_is_foreign_letter(c) for c in text):
        raise InvalidIdentity("last_name")
    name = _NOT_A_TO_Z.sub("", text)
    if not name:
        raise InvalidIdentity("last_name")
    return name


def _is_foreign_letter(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "L" and category != "Lm" and not ("A" <= char <= "Z")


def nir_matches_birth_date(nir: str, born: date) -> bool:
    """Whether a NIR's year and month agree with a birth date.

    A mismatch is *not* an error: practices often record a child under the
    insured parent's NIR. Builders count it; the widget shows a hint.
    """
    if int(nir[1:3]) != born.year % 100:
        return False
    month = int(nir[3:5])
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
    )
