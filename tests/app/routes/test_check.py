"""POST /v1/check: one envelope (status, headers, length) whatever the answer.

Every response is compared with a reference by ``envelope()``: the status,
every header line in order (Date aside) and the body length. A hit and a
miss, in French or English, must be indistinguishable without reading the
body itself.
"""

from __future__ import annotations

import logging
import re
from datetime import date

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from app.schemas import CheckAnswer
from lookup_index import InvalidIdentity, canonical_identity
from lookup_index.generator import LATEST_BIRTH_DATE
from tests.app.helpers import (
    ANSWER_KEYS,
    CHECK,
    body_of,
    envelope,
    without_padding,
)
from tests.support.dataset import Dataset

CHECKED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


async def test_every_probe_gets_its_answer_in_one_envelope(
    generous: httpx.AsyncClient, dataset: Dataset
) -> None:
    """A sweep over every affected and not-found probe, alternately in French and English."""
    probes = dataset.by_expected("affected") + dataset.by_expected("not_found")
    assert len(dataset.by_expected("affected")) > 100
    assert len(dataset.by_expected("not_found")) > 100
    envelopes = set()
    for number, probe in enumerate(probes):
        lang = ("fr", "en")[number % 2]
        response = await generous.post(CHECK, json=body_of(probe, lang=lang))
        answer = orjson.loads(response.content)
        assert answer["status"] == probe.expected, probe
        assert answer["lang"] == lang
        assert answer["exposed"] == list(probe.categories)
        status, headers, length = envelope(response)
        envelopes.add((status, tuple(headers), length))
    assert len(envelopes) == 1, envelopes


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_hit_and_miss_in_the_same_language_share_the_envelope(
    generous: httpx.AsyncClient, dataset: Dataset, lang: str
) -> None:
    hit, miss = dataset.by_expected("affected")[1], dataset.by_expected("not_found")[1]
    headers = {"accept-language": f"{lang};q=0.9"}
    answers = [await generous.post(CHECK, json=body_of(p), headers=headers) for p in (hit, miss)]
    assert [without_padding(a)["status"] for a in answers] == ["affected", "not_found"]
    assert [without_padding(a)["lang"] for a in answers] == [lang, lang]
    assert envelope(answers[0]) == envelope(answers[1])
    assert answers[0].status_code == 200


@st.composite
def well_formed_identities(draw: st.DrawFn) -> dict[str, str]:
    """Any valid identity as a patient could type it: separators, case, accents, Corsica."""
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=LATEST_BIRTH_DATE))
    department = draw(st.sampled_from([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]))
    digits = f"{draw(st.integers(1, 990)):03d}{draw(st.integers(1, 999)):03d}"
    body = f"{draw(st.sampled_from('12'))}{born.year % 100:02d}{born.month:02d}{department}{digits}"
    nir = body + stdnum_nir.calc_check_digits(body)
    separator = draw(st.sampled_from(["", " ", ".", "-"]))
    parts = (nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:])
    typed_nir = separator.join(parts)
    if draw(st.booleans()):
        typed_nir = typed_nir.lower()
    name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyzÉÈéèêëçàâîïôœùûüÿ- '", max_size=40))
    name = draw(st.sampled_from(["A", "ß", "Ø"])) + name
    identity = {"nir": typed_nir, "birth_date": born.isoformat(), "last_name": name}
    try:
        canonical_identity(**identity)
    except InvalidIdentity:
        assume(False)
    return identity


@settings(
    max_examples=60,
    deadline=None,
    # One app for every example, on purpose: the limits are lifted and nothing is cached.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    identity=well_formed_identities(),
    hit_number=st.integers(0, 299),
    lang=st.sampled_from([None, "fr", "en"]),
    accept_language=st.sampled_from(["", "en-GB,en;q=0.8", "fr-FR", "de, en;q=0.5", "*"]),
)
async def test_generated_identities_share_the_envelope_of_a_hit(
    generous: httpx.AsyncClient,
    dataset: Dataset,
    identity: dict[str, str],
    hit_number: int,
    lang: str | None,
    accept_language: str,
) -> None:
    hits = dataset.by_expected("affected")
    hit = hits[hit_number % len(hits)]
    extra = {"lang": lang} if lang else {}
    headers = {"accept-language": accept_language}
    reference = await generous.post(CHECK, json=body_of(hit, **extra), headers=headers)
    response = await generous.post(CHECK, json={**identity, **extra}, headers=headers)
    assert without_padding(reference)["status"] == "affected"
    assert without_padding(response)["status"] in ("affected", "not_found")
    assert envelope(response) == envelope(reference)


async def test_the_body_has_the_documented_shape(
    generous: httpx.AsyncClient, dataset: Dataset
) -> None:
    for probe in (dataset.by_expected("affected")[0], dataset.by_expected("not_found")[0]):
        response = await generous.post(CHECK, json=body_of(probe))
        data = orjson.loads(response.content)
        assert set(data) == ANSWER_KEYS
        answer = CheckAnswer.model_validate(data)
        assert answer.status == probe.expected
        assert answer.incident.id == "test-incident"
        assert CHECKED_AT.fullmatch(answer.checked_at)
        assert [e.category for e in answer.advice.exposed] == answer.exposed
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"


async def test_padding_is_fresh_for_every_answer(
    generous: httpx.AsyncClient, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two identical requests: same answer, different padding, drawn from ``secrets``."""
    import app.padded_json

    drawn: list[int] = []
    real = app.padded_json.secrets.token_urlsafe

    def spy(nbytes: int) -> str:
        drawn.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(app.padded_json.secrets, "token_urlsafe", spy)
    probe = dataset.by_expected("not_found")[0]
    first, second = [await generous.post(CHECK, json=body_of(probe)) for _ in range(2)]
    assert len(drawn) == 2
    pad1, pad2 = orjson.loads(first.content)["padding"], orjson.loads(second.content)["padding"]
    assert len(pad1) == len(pad2) > 1000
    assert pad1 != pad2
    assert re.fullmatch(r"[A-Za-z0-9_-]+", pad1)
    assert without_padding(first) | {"checked_at": ""} == without_padding(second) | {
        "checked_at": ""
    }


async def test_no_compression_even_when_asked(
    generous: httpx.AsyncClient, dataset: Dataset
) -> None:
    response = await generous.post(
        CHECK,
        json=body_of(dataset.by_expected("affected")[0]),
        headers={"accept-encoding": "gzip, br"},
    )
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)


async def test_a_hit_logs_exactly_what_a_miss_logs(
    generous: httpx.AsyncClient, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """No extra log line (nor any other trace) on a hit: the same code path for both."""
    caplog.set_level(logging.DEBUG)
    traces = []
    for probe in (dataset.by_expected("affected")[3], dataset.by_expected("not_found")[3]):
        caplog.clear()
        await generous.post(CHECK, json=body_of(probe))
        traces.append(
            [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name != "httpx"]
        )
    assert traces[0] == traces[1]
