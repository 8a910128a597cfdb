"""Identity normalisation: the one function builder and API share.

If two spellings of the same identity normalised differently, a patient would
be told "not found" although exposed; if an invalid NIR slipped through, the
API would burn Argon2 on garbage. Hence properties over many spellings, and
vectors for every rule of the NIR's structure.
"""

from __future__ import annotations

import re
import traceback
import unicodedata
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lookup_index.exceptions import InvalidIdentity, Reason
from lookup_index.normalise import (
    EARLIEST_BIRTH_DATE,
    MAX_NAME_LENGTH,
    MAX_NIR_INPUT_LENGTH,
    PARTICLES,
    BirthDate,
    bucket_name,
    canonical_identity,
    name_forms,
    name_tokens,
    nir_matches_birth_date,
    normalise_last_name,
    normalise_nir,
    parse_birth_date,
)
from tests.lookup_index.helpers import keyed, wrong_key

#: A fixed "today" so date rules do not depend on when the suite runs.
TODAY = date(2026, 6, 15)
NIR_REASONS = ("nir_format", "nir_key", "nir_range")
_BODY_SHAPE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}")

# --- strategies ---------------------------------------------------------------------------

_VALID_MONTHS = [*range(1, 13), *range(20, 43), *range(50, 100)]
_places = st.one_of(
    # Metropolitan department (01-95) and commune.
    st.builds(lambda d, c: f"{d:02d}{c:03d}", st.integers(1, 95), st.integers(1, 999)),
    # Corsica since 1976.
    st.builds(lambda d, c: f"{d}{c:03d}", st.sampled_from(["2A", "2B"]), st.integers(1, 999)),
    # Overseas departments 971-976: three-digit department, two-digit commune.
    st.builds(lambda d, c: f"97{d}{c:02d}", st.integers(1, 6), st.integers(1, 99)),
    # Born abroad: 99 and an INSEE country code.
    st.builds(lambda c: f"99{c:03d}", st.integers(100, 999)),
)
nir_bodies = st.builds(
    lambda sex, year, month, place, order: f"{sex}{year:02d}{month:02d}{place}{order:03d}",
    st.sampled_from("123478"),
    st.integers(0, 99),
    st.sampled_from(_VALID_MONTHS),
    _places,
    st.integers(1, 999),
)
_separators = st.sampled_from(["", "", "", " ", ".", "-", " - ", ". ", "\t", "\u00a0"])


@st.composite
def spellings(draw: st.DrawFn, nir: str) -> str:
    """``nir`` as a person or a practice might type it: separators anywhere, any case."""
    gaps = [draw(_separators) for _ in range(len(nir) + 1)]
    text = gaps[0] + "".join(c + gap for c, gap in zip(nir, gaps[1:], strict=True))
    text = text.lower() if draw(st.booleans()) else text
    # Longer than this is refused on length alone (tested separately).
    assume(len(text) <= MAX_NIR_INPUT_LENGTH)
    return text


_FRENCH_LETTERS = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzàâäçéèêëîïôöùûüÿñœæßÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸÑŒÆ"
)
_NAME_SEPARATORS = " -'’"
french_names = st.text(alphabet=_FRENCH_LETTERS + _NAME_SEPARATORS, min_size=1, max_size=40).filter(
    lambda s: any(c not in _NAME_SEPARATORS for c in s)
)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def outcome(call: Callable[[str], str], raw: str) -> tuple[str | None, InvalidIdentity | None]:
    """(result, None) or (None, the InvalidIdentity raised): properties inspect either."""
    try:
        return call(raw), None
    except InvalidIdentity as exc:
        return None, exc


def reason_of(call: object, *args: object, **kwargs: object) -> Reason:
    assert callable(call)
    with pytest.raises(InvalidIdentity) as info:
        call(*args, **kwargs)
    return info.value.reason


def assert_leaks_nothing(exc: InvalidIdentity, raw: str) -> None:
    """The exception, as logged with its traceback, carries the reason code and nothing else."""
    assert exc.args == (exc.reason,)
    assert str(exc) == exc.reason
    # A chained stdnum error would be printed along with the traceback.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    # The full traceback holds source lines, which any short text may match; digit runs
    # cannot, so only they are searched there. The message line must be the bare reason.
    digits = re.sub(r"[^0-9]", "", raw)
    if len(digits) >= 4:
        assert digits not in "".join(traceback.format_exception(exc))
    message = "".join(traceback.format_exception_only(exc))
    assert message == f"lookup_index.exceptions.InvalidIdentity: {exc.reason}\n"


# --- NIR: properties ----------------------------------------------------------------------


@given(nir_bodies)
def test_a_keyed_nir_normalises_to_its_13_character_body(body: str) -> None:
    assert normalise_nir(keyed(body)) == body


@given(st.data())
def test_separators_and_case_never_change_the_nir(data: st.DataObject) -> None:
    body = data.draw(nir_bodies)
    assert normalise_nir(data.draw(spellings(keyed(body)))) == body


@given(nir_bodies)
def test_nir_normalisation_is_idempotent(body: str) -> None:
    once = normalise_nir(keyed(body).lower())
    assert normalise_nir(keyed(once)) == once


@given(nir_bodies, st.integers(7, 14), st.integers(1, 9))
def test_a_single_wrong_digit_after_the_place_is_caught_by_the_key(
    body: str, position: int, delta: int
) -> None:
    nir = keyed(body)
    typo = nir[:position] + str((int(nir[position]) + delta) % 10) + nir[position + 1 :]
    assume(typo[10:13] != "000")  # that one is a range error, tested below
    assert reason_of(normalise_nir, typo) == "nir_key"


@given(
    st.one_of(
        st.text(max_size=50),
        st.text(alphabet="0123456789AaBbCc .-", min_size=10, max_size=45),
    )
)
def test_any_text_is_a_nir_body_or_a_nir_reason_and_never_leaks(raw: str) -> None:
    body, error = outcome(normalise_nir, raw)
    if error is not None:
        assert error.reason in NIR_REASONS
        assert_leaks_nothing(error, raw)
    else:
        assert body is not None
        assert _BODY_SHAPE.fullmatch(body)


# --- NIR: vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("1850375123456", "Paris"),
        ("285032A004123", "Corse-du-Sud (2A)"),
        ("192032B033045", "Haute-Corse (2B)"),
        ("2780997105012", "Guadeloupe (971)"),
        ("1010197611001", "Mayotte (976)"),
        ("1620599352001", "born in Algeria (99 352)"),
        ("2911299134077", "born in Spain (99 134)"),
        ("1852075123456", "month unknown (20)"),
        ("1853075123456", "month unknown (30)"),
        ("1855075123456", "month unknown (50)"),
        ("1859975123456", "month unknown (99)"),
        ("1853175123456", "month + 30 (31 = January)"),
        ("1854275123456", "month + 30 (42 = December)"),
        ("3850375123456", "sex digit 3"),
        ("4850375123456", "sex digit 4"),
        ("7850375123456", "temporary number, sex digit 7"),
        ("8850375123456", "temporary number, sex digit 8"),
        ("1850375123001", "order 001"),
        ("1850375000456", "commune 000 (only the order may not be 000)"),
    ],
)
def test_valid_nir(body: str, what: str) -> None:
    assert normalise_nir(keyed(body)) == body, what


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        ("1 85 03 75 123 456 41", "1850375123456"),
        ("1.85.03.75.123.456.41", "1850375123456"),
        ("1-85-03-75-123-456-41", "1850375123456"),
        ("  185037512345641  ", "1850375123456"),
        ("1 85-03.75  123 456\t41", "1850375123456"),
        ("1\u00a085\u00a003\u00a075\u00a0123\u00a0456\u00a041", "1850375123456"),  # pasted NBSP
        ("2 85 03 2a 004 123 71", "285032A004123"),
        ("192032b033045" + keyed("192032B033045")[13:], "192032B033045"),
    ],
)
def test_separators_and_lower_case_corsica(raw: str, body: str) -> None:
    assert normalise_nir(raw) == body


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "nir_format"),
        ("1850375123456", "nir_format"),  # no key
        ("18503751234564", "nir_format"),  # 14 digits
        ("1850375123456411", "nir_format"),  # 16 digits
        ("185037512345A41", "nir_format"),
        ("2A5037512345641", "nir_format"),  # 2A outside the department
        ("185032C004123" + "71", "nir_format"),  # only 2A/2B
        ("１８５０３７５１２３４５６４１", "nir_format"),  # full-width digits
        ("1" + " " * 30 + "85037512345641", "nir_format"),  # too long even if it holds a NIR
        ("9" * (MAX_NIR_INPUT_LENGTH + 1), "nir_format"),
        (wrong_key("1850375123456"), "nir_key"),
        (wrong_key("285032A004123"), "nir_key"),
        (wrong_key("192032B033045"), "nir_key"),
        (wrong_key("1620599352001"), "nir_key"),
        ("1850375123456" + "00", "nir_key"),
        ("1850375123456" + "98", "nir_key"),
        # A Corsican NIR keyed as if 2A were 20 (the key uses 19 for 2A).
        ("285032A004123" + keyed("2850320004123")[13:], "nir_key"),
        (keyed("5850375123456"), "nir_range"),
        (keyed("6850375123456"), "nir_range"),
        (keyed("9850375123456"), "nir_range"),
        (keyed("0850375123456"), "nir_range"),
        (keyed("1850375123000"), "nir_range"),  # order 000
        (keyed("1850075123456"), "nir_range"),  # month 00
        (keyed("1851375123456"), "nir_range"),  # month 13
        (keyed("1851975123456"), "nir_range"),  # month 19
        (keyed("1854375123456"), "nir_range"),  # month 43
        (keyed("1854975123456"), "nir_range"),  # month 49
    ],
)
def test_invalid_nir_gives_its_reason_and_nothing_else(raw: str, reason: Reason) -> None:
    with pytest.raises(InvalidIdentity) as info:
        normalise_nir(raw)
    assert info.value.reason == reason
    assert_leaks_nothing(info.value, raw)


def test_a_nir_input_of_exactly_the_maximum_length_is_accepted() -> None:
    nir = keyed("1850375123456")
    padded = nir.center(MAX_NIR_INPUT_LENGTH)
    assert len(padded) == MAX_NIR_INPUT_LENGTH
    assert normalise_nir(padded) == "1850375123456"
    assert reason_of(normalise_nir, padded + " ") == "nir_format"


@pytest.mark.parametrize("letter", ["X", "x", "O", "I"])
def test_a_letter_between_nir_groups_is_not_a_separator(letter: str) -> None:
    """A letter is a typo (O for 0, X for a missing digit): refused, never skipped over."""
    nir = keyed("1850375123456")
    assert reason_of(normalise_nir, f"{nir[:7]}{letter}{nir[7:]}") == "nir_format"
    assert reason_of(normalise_nir, f"{nir[:13]} {letter} {nir[13:]}") == "nir_format"


@pytest.mark.parametrize(
    "separator",
    ["\u00ad", "\u200b", "\u2060", "\ufeff"],  # soft hyphen, zero-width space, word joiner, BOM
)
def test_invisible_format_characters_between_nir_groups_are_separators(separator: str) -> None:
    """Copied from a web page or a PDF, a NIR may carry invisible ``Cf`` characters."""
    assert unicodedata.category(separator) == "Cf"
    assert not separator.isspace()  # not already a space
    nir = keyed("1850375123456")
    spaced = separator.join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))
    assert normalise_nir(spaced) == "1850375123456"


@pytest.mark.parametrize("key", ["00", "98", "99"])
def test_a_key_outside_01_to_97_is_refused_even_if_the_checksum_library_passed_it(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """The key range is this module's own rule, not only python-stdnum's checksum.

    With the real library these keys already fail the checksum; a permissive
    ``validate`` (a library regression) must still not let them through.
    """
    monkeypatch.setattr("lookup_index.normalise.stdnum_nir.validate", lambda number: number)
    assert reason_of(normalise_nir, "1850375123456" + key) == "nir_key"
    assert normalise_nir("1850375123456" + "01") == "1850375123456"
    assert normalise_nir("1850375123456" + "97") == "1850375123456"


# --- NIR against the birth date -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "born", "matches"),
    [
        ("1850375123456", date(1985, 3, 12), True),
        ("1850375123456", date(1985, 4, 12), False),  # other month
        ("1850375123456", date(1986, 3, 12), False),  # other year
        ("1850375123456", date(1885, 3, 12), True),  # the year is the birth year mod 100
        ("1050375123456", date(2005, 3, 1), True),
        ("1853375123456", date(1985, 3, 12), True),  # 33 = March + 30
        ("1853375123456", date(1985, 4, 12), False),
        ("1853175123456", date(1985, 1, 1), True),
        ("1854275123456", date(1985, 12, 31), True),
        ("1854275123456", date(1985, 11, 30), False),
        ("1852075123456", date(1986, 5, 5), False),  # unknown month, wrong year
    ],
)
def test_nir_matches_birth_date(body: str, born: date, matches: bool) -> None:
    assert nir_matches_birth_date(body, born) is matches
    # The rule reads only the year and month, so the keyed 15 characters give the same answer.
    assert nir_matches_birth_date(keyed(body), born) is matches


@pytest.mark.parametrize("code", [20, 25, 30, 50, 64, 99])
@pytest.mark.parametrize("month", range(1, 13))
def test_unknown_month_codes_match_any_month(code: int, month: int) -> None:
    assert nir_matches_birth_date(f"185{code:02d}75123456", date(1985, month, 15))


@given(st.dates(EARLIEST_BIRTH_DATE, TODAY), st.integers(1, 12))
def test_month_rule_property(born: date, other: int) -> None:
    body = f"1{born.year % 100:02d}{born.month:02d}75123456"
    plus_30 = f"1{born.year % 100:02d}{born.month + 30:02d}75123456"
    assert nir_matches_birth_date(body, born)
    assert nir_matches_birth_date(plus_30, born)
    if other != born.month:
        assert not nir_matches_birth_date(f"1{born.year % 100:02d}{other:02d}75123456", born)
        assert not nir_matches_birth_date(f"1{born.year % 100:02d}{other + 30:02d}75123456", born)


def test_a_child_recorded_under_a_parents_nir_is_valid_but_does_not_match() -> None:
    parent_nir = keyed("2700575123045")  # a mother born in May 1970
    child = canonical_identity(parent_nir, "2005-08-01", "Martin", today=TODAY)
    assert child.nir == parent_nir[:13]
    assert not nir_matches_birth_date(child.nir, child.birth_date)


# --- birth dates --------------------------------------------------------------------------


@given(st.dates(EARLIEST_BIRTH_DATE, TODAY))
def test_iso_and_french_spellings_parse_to_the_same_date(born: date) -> None:
    expected = BirthDate.of(born)
    assert parse_birth_date(born.isoformat(), today=TODAY) == expected
    assert parse_birth_date(born.strftime("%d/%m/%Y"), allow_french=True, today=TODAY) == expected
    assert parse_birth_date(f"{born.day}/{born.month}/{born.year}", allow_french=True) == expected
    assert parse_birth_date(born.isoformat() + " 00:00:00", allow_french=True) == expected


@given(st.dates(EARLIEST_BIRTH_DATE, TODAY))
def test_french_dates_need_allow_french(born: date) -> None:
    assert reason_of(parse_birth_date, born.strftime("%d/%m/%Y"), today=TODAY) == "birth_date"


@given(st.one_of(st.dates(max_value=EARLIEST_BIRTH_DATE - timedelta(days=1)),
                 st.dates(min_value=TODAY + timedelta(days=1))))  # fmt: skip
def test_implausible_dates_are_rejected(born: date) -> None:
    assume(born.year >= 1000)  # four-digit years only; shorter ones fail on shape anyway
    assert reason_of(parse_birth_date, born.isoformat(), today=TODAY) == "birth_date"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-12", date(1985, 3, 12)),
        (" 1985-03-12 ", date(1985, 3, 12)),
        ("1890-01-01", date(1890, 1, 1)),
        ("2000-02-29", date(2000, 2, 29)),
        (TODAY.isoformat(), TODAY),
    ],
)
def test_valid_birth_dates(raw: str, expected: date) -> None:
    assert parse_birth_date(raw, today=TODAY) == BirthDate.of(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "1889-12-31",
        (TODAY + timedelta(days=1)).isoformat(),
        "1990-02-30",
        "1900-02-29",  # not a leap year
        "2001-02-29",
        "1990-13-01",
        "1990-00-10",  # an unknown month with a known day
        "1990-13-00",
        "1985-3-12",
        "85-03-12",
        "1985/03/12",
        "12-03-1985",
        "1985-03-12T12:00",  # a time that is not midnight
        "19850312",
        "１９８５-03-12",
        "",
    ],
)
def test_invalid_birth_dates(raw: str) -> None:
    with pytest.raises(InvalidIdentity) as info:
        parse_birth_date(raw, allow_french=True, today=TODAY)
    assert info.value.reason == "birth_date"
    assert_leaks_nothing(info.value, raw)


@pytest.mark.parametrize("raw", ["30/02/1990", "31/04/1990", "12/13/1985", "31/12/1889"])
def test_invalid_french_dates(raw: str) -> None:
    assert reason_of(parse_birth_date, raw, allow_french=True, today=TODAY) == "birth_date"


def test_today_defaults_to_the_real_date() -> None:
    today = date.today()
    assert parse_birth_date(today.isoformat()) == BirthDate.of(today)
    later = (today + timedelta(days=2)).isoformat()
    assert reason_of(parse_birth_date, later) == "birth_date"


# --- last names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dupont", "DUPONT"),
        ("  dupont  ", "DUPONT"),
        ("Hervé", "HERVE"),
        ("Lefèvre", "LEFEVRE"),
        ("Müller", "MULLER"),
        ("Mueller", "MULLER"),  # AE/OE/UE fold like the umlauts they transliterate
        ("MULLER", "MULLER"),
        ("Schröder", "SCHRODER"),
        ("de La Fontaine", "FONTAINE"),  # leading particles written apart are dropped
        ("LA FONTAINE", "FONTAINE"),
        ("Lafontaine", "LAFONTAINE"),  # glued: another word (the builder's variant keys)
        ("du Bellay", "BELLAY"),
        ("Lê", "LE"),  # a particle alone is the name
        ("N'Diaye", "NDIAYE"),  # N' is not a particle
        ("Nuñez", "NUNEZ"),
        ("Françoise", "FRANCOISE"),
        ("Lœuillet", "LOUILLET"),
        ("LŒUILLET", "LOUILLET"),
        ("Loeuillet", "LOUILLET"),
        ("Cœur-de-Lion", "COURDELION"),  # only leading particles go
        ("Cæsar", "CASAR"),
        ("LÆTITIA", "LATITIA"),
        ("Straß", "STRASS"),
        ("STRAẞE", "STRASSE"),
        ("Øster", "OSTER"),
        ("Łukasz", "LUKASZ"),
        ("d'Artagnan", "ARTAGNAN"),
        ("D’Artagnan", "ARTAGNAN"),
        ("Le Goff", "GOFF"),
        ("Saint-Exupéry", "SAINTEXUPERY"),
        ("de Saint-Exupéry", "SAINTEXUPERY"),  # every word after the particles is kept
        ("de la Tour du Pin", "TOURDUPIN"),
        ("Martin--Durand", "MARTINDURAND"),
        ("ＤＵＰＯＮＴ", "DUPONT"),  # full-width, folded by NFKC
        ("He\u0301rve\u0301", "HERVE"),  # decomposed accents
        ("A" * MAX_NAME_LENGTH, "A" * MAX_NAME_LENGTH),
        ("D\u02bcArtagnan", "ARTAGNAN"),  # modifier-letter apostrophe, a separator
    ],
)
def test_last_name_folding(raw: str, expected: str) -> None:
    assert normalise_last_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", " ", "-", "'", "' '", "...", "123", "李", "Ωμέγα", "A" * (MAX_NAME_LENGTH + 1)],
)
def test_last_name_rejected(raw: str) -> None:
    with pytest.raises(InvalidIdentity) as info:
        normalise_last_name(raw)
    assert info.value.reason == "last_name"
    assert_leaks_nothing(info.value, raw)


@pytest.mark.parametrize(
    "raw",
    [
        "Dupont\u0439",  # one Cyrillic letter: dropping it would look up "DUPONT"
        "Pаpadopoulos",  # Cyrillic "а" among Latin letters (a homoglyph)
        "Papadopoulosβ",
        "Martin李",
        "Ωmartin",
        "Smithـج",  # Arabic
    ],
)
def test_letters_that_do_not_fold_to_a_z_make_the_name_invalid(raw: str) -> None:
    """Never silently another name: the patient would get a false "not found"."""
    with pytest.raises(InvalidIdentity) as info:
        normalise_last_name(raw)
    assert info.value.reason == "last_name"


@given(french_names)
def test_case_accents_and_separators_never_change_a_name(name: str) -> None:
    canonical = normalise_last_name(name)
    assert normalise_last_name(name.lower()) == canonical
    assert normalise_last_name(name.upper()) == canonical
    assert normalise_last_name(strip_accents(name)) == canonical
    assert normalise_last_name(unicodedata.normalize("NFD", name)) == canonical
    assert normalise_last_name(unicodedata.normalize("NFC", name)) == canonical
    other_separator = re.sub(f"[{re.escape(_NAME_SEPARATORS)}]", "-", name)
    assert normalise_last_name(other_separator) == canonical
    if name_tokens(name)[0] not in PARTICLES:  # a particle glued to the name is another word
        without_separators = re.sub(f"[{re.escape(_NAME_SEPARATORS)}]", "", name)
        assert normalise_last_name(without_separators) == canonical


@given(st.text(max_size=MAX_NAME_LENGTH + 20))
def test_any_text_is_a_folded_name_or_a_last_name_reason(raw: str) -> None:
    name, error = outcome(normalise_last_name, raw)
    if error is not None:
        assert error.reason == "last_name"
        assert_leaks_nothing(error, raw)
    else:
        assert name is not None
        assert len(raw) <= MAX_NAME_LENGTH
        assert re.fullmatch("[A-Z]+", name)
        assert normalise_last_name(name) == name  # idempotent


# --- the canonical identity ---------------------------------------------------------------


def test_canonical_bytes() -> None:
    identity = canonical_identity("1 85 03 75 123 456 41", "1985-03-12", "Dupont", today=TODAY)
    assert identity.canonical() == b"v2|1850375123456|1985-03-12|DUPONT"
    assert identity.with_last_name("Durand-Lefèvre").canonical() == (
        b"v2|1850375123456|1985-03-12|DURANDLEFEVRE"
    )


@given(st.data())
def test_every_spelling_of_an_identity_has_the_same_canonical_bytes(data: st.DataObject) -> None:
    body = data.draw(nir_bodies)
    born = data.draw(st.dates(EARLIEST_BIRTH_DATE, TODAY))
    name = data.draw(french_names)
    reference = canonical_identity(keyed(body), born.isoformat(), name, today=TODAY)
    variant = canonical_identity(
        data.draw(spellings(keyed(body))),
        born.strftime("%d/%m/%Y"),
        data.draw(st.sampled_from([name.lower(), name.upper(), strip_accents(name)])),
        allow_french_dates=True,
        today=TODAY,
    )
    assert variant.canonical() == reference.canonical()


@pytest.mark.parametrize(
    ("nir", "born", "name", "reason"),
    [
        ("1850375123456", "1985-03-12", "Dupont", "nir_format"),
        (wrong_key("1850375123456"), "1985-03-12", "Dupont", "nir_key"),
        (keyed("5850375123456"), "1985-03-12", "Dupont", "nir_range"),
        (keyed("1850375123456"), "12/03/1985", "Dupont", "birth_date"),  # French needs opt-in
        (keyed("1850375123456"), "1985-03-12", "--", "last_name"),
    ],
)
def test_canonical_identity_reports_the_failing_field(
    nir: str, born: str, name: str, reason: Reason
) -> None:
    assert reason_of(canonical_identity, nir, born, name, today=TODAY) == reason


def test_canonical_identity_judges_the_birth_date_against_the_today_it_is_given() -> None:
    nir = keyed("1100375123456")
    too_early = date(2010, 3, 11)
    assert reason_of(canonical_identity, nir, "2010-03-12", "Dupont", today=too_early) == (
        "birth_date"
    )
    assert reason_of(canonical_identity, nir, "2010-04-00", "Dupont", today=too_early) == (
        "birth_date"
    )
    born = canonical_identity(nir, "2010-03-12", "Dupont", today=date(2010, 3, 12)).birth_date
    assert born == BirthDate(2010, 3, 12)


def test_the_bucket_name_follows_the_typed_name_through_every_identity_constructor() -> None:
    """The per-identity limits count :func:`bucket_name` of what was typed, whatever the key."""
    identity = canonical_identity(
        keyed("1850375123456"), "1985-03-12", "de La Fontaine", today=TODAY
    )
    assert identity.bucket_name == "FONTAINE"
    # A builder variant key under another name form still belongs to the typed name's bucket.
    variant = identity.with_name_form("LAFONTAINE")
    assert (variant.last_name, variant.bucket_name) == ("LAFONTAINE", "FONTAINE")
    # Another typed name: its own canonical form and its own bucket.
    renamed = identity.with_last_name("Martin-Durand")
    assert (renamed.last_name, renamed.bucket_name) == ("MARTINDURAND", "MARTIN")


# --- issue 14: unknown days, export date forms, NIR separators, name forms ----------------


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("1950-00-00", "1950-00-00"),
        ("1950-03-00", "1950-03-00"),
        ("1890-00-00", "1890-00-00"),
        (f"{TODAY.year}-{TODAY.month:02d}-00", f"{TODAY.year}-{TODAY.month:02d}-00"),
    ],
)
def test_unknown_day_or_month_is_kept_as_00(raw: str, iso: str) -> None:
    born = parse_birth_date(raw, today=TODAY)
    assert born.isoformat() == iso
    assert not born.known


@pytest.mark.parametrize(
    "raw",
    [
        "1950-00-12",
        "1950-13-00",
        "1889-00-00",
        f"{TODAY.year + 1}-00-00",
        "1950-0-00",
        f"{TODAY.year}-{TODAY.month + 1:02d}-00",  # this year, but a month still to come
        f"00/{TODAY.month + 1:02d}/{TODAY.year}",
    ],
)
def test_unknown_dates_that_cannot_be(raw: str) -> None:
    assert reason_of(parse_birth_date, raw, allow_french=True, today=TODAY) == "birth_date"


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2/3/1985", "1985-03-02"),
        ("02/03/1985", "1985-03-02"),
        ("1985-03-02 00:00:00", "1985-03-02"),
        ("02/03/1985 00:00", "1985-03-02"),
        ("1985-03-02T00:00:00", "1985-03-02"),
        ("00/00/1950", "1950-00-00"),
        ("0/3/1950", "1950-03-00"),
        ("00/03/1950 00:00:00", "1950-03-00"),
    ],
)
def test_export_date_forms(raw: str, iso: str) -> None:
    assert parse_birth_date(raw, allow_french=True, today=TODAY).isoformat() == iso


@pytest.mark.parametrize("raw", ["2/3/85", "02/03/85", "00/00/50"])
def test_two_digit_years_have_their_own_reason(raw: str) -> None:
    assert reason_of(parse_birth_date, raw, allow_french=True, today=TODAY) == (
        "birth_date_two_digit_year"
    )
    # The API's strict mode knows no such form: a plain malformed date.
    assert reason_of(parse_birth_date, raw, today=TODAY) == "birth_date"


def test_the_api_mode_takes_no_time_suffix() -> None:
    assert reason_of(parse_birth_date, "1985-03-02 00:00:00", today=TODAY) == "birth_date"


@pytest.mark.parametrize(
    "separator", ["\u2013", "\u2014", "\u2212", "\u00a0", "\u202f", "\u2009", "\u2010", " - "]
)
def test_any_dash_or_space_separates_nir_groups(separator: str) -> None:
    nir = keyed("1850375123456")
    spaced = separator.join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))
    assert normalise_nir(spaced) == "1850375123456"


def test_unknown_month_agrees_with_any_nir_month_of_the_year() -> None:
    assert nir_matches_birth_date("1850375123456", BirthDate(1985, 0, 0))
    assert not nir_matches_birth_date("1850375123456", BirthDate(1986, 0, 0))
    assert nir_matches_birth_date("1850375123456", BirthDate(1985, 3, 0))
    assert not nir_matches_birth_date("1850375123456", BirthDate(1985, 4, 0))


@pytest.mark.parametrize(
    ("raw", "forms"),
    [
        ("Dupont", {}),
        ("de La Fontaine", {"DELAFONTAINE": "particles_glued", "LAFONTAINE": "particles_glued"}),
        ("LA FONTAINE", {"LAFONTAINE": "particles_glued", "DELAFONTAINE": "particles_glued"}),
        ("D'Almeida", {"DALMEIDA": "particles_glued"}),
        ("Martin-Durand", {"MARTIN": "name_part", "DURAND": "name_part"}),
        ("Vasseur-Dos Santos", {
            "VASSEUR": "name_part", "DOS": "name_part", "SANTOS": "name_part",
            "VASSEURDOS": "name_part", "DOSSANTOS": "name_part",
        }),
        ("Lê", {}),
        ("Ly-Durand", {"LY": "name_part", "DURAND": "name_part"}),  # a two-letter part is keyed
        ("La", {}),  # the particle alone is the name: no "DELA" key
        # A trailing Portuguese "e" folds into the A before it (as AE does): the part COSTA
        # is the canonical form itself, which is never written again as a variant key.
        ("Costa e", {}),
    ],
)  # fmt: skip
def test_name_forms_the_builder_adds(raw: str, forms: dict[str, str]) -> None:
    assert name_forms(raw) == forms
    assert normalise_last_name(raw) not in name_forms(raw)


@pytest.mark.parametrize(
    "typed", ["de La Fontaine", "La Fontaine", "Fontaine", "Delafontaine", "DE LA FONTAINE"]
)
def test_every_typing_of_a_particle_name_shares_one_bucket(typed: str) -> None:
    assert bucket_name(typed) == "FONTAINE"


@pytest.mark.parametrize(
    ("typed", "bucket"),
    [
        ("Lebon", "BON"),  # a glued particle is peeled when three letters remain
        ("Ledru", "DRU"),  # ... but not when only two would ("RU")
        ("Dia", "DIA"),
        ("Lee", "LEE"),
    ],
)
def test_glued_particles_are_peeled_only_off_three_letters_or_more(typed: str, bucket: str) -> None:
    assert bucket_name(typed) == bucket


def test_compound_typings_share_the_first_part_s_bucket() -> None:
    assert {bucket_name(n) for n in ("Martin-Durand", "Martin Durand", "MARTIN")} == {"MARTIN"}
