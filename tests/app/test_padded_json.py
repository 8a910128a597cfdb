"""PaddedJSON: every body exactly the configured size, padding fresh and JSON-safe."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.padded_json import PaddedJSON, PaddedSizeMismatch, PayloadDoesNotFit

SIZE = 4096


@given(
    payload=st.dictionaries(
        st.text(max_size=20).filter(lambda key: key != "padding"),
        st.one_of(
            st.text(max_size=300),
            st.integers(-(2**63), 2**63 - 1),
            st.lists(st.text(max_size=30), max_size=10),
        ),
        max_size=8,
    )
)
def test_every_payload_is_padded_to_the_exact_size(payload: dict[str, object]) -> None:
    body = PaddedJSON(SIZE).render(payload)
    assert len(body) == SIZE
    decoded = orjson.loads(body)
    assert decoded.pop("padding")
    assert decoded == payload


def test_padding_is_never_the_same() -> None:
    renderer = PaddedJSON(SIZE)
    bodies = {renderer.render({"status": "not_found"}) for _ in range(50)}
    assert len(bodies) == 50


def test_a_payload_that_does_not_fit_is_refused() -> None:
    # The operator's message says by how much (the start-up refusal quotes it).
    needed = len(orjson.dumps({"text": "x" * SIZE, "padding": ""}))
    with pytest.raises(PayloadDoesNotFit, match=f"needs {needed} bytes, limit is {SIZE}"):
        PaddedJSON(SIZE).render({"text": "x" * SIZE})


def test_a_payload_that_fits_exactly_gets_empty_padding() -> None:
    frame = len(orjson.dumps({"text": "", "padding": ""}))
    body = PaddedJSON(SIZE).render({"text": "x" * (SIZE - frame)})
    assert len(body) == SIZE
    assert orjson.loads(body)["padding"] == ""


def test_an_answer_is_200_by_default() -> None:
    assert PaddedJSON(SIZE).response({"status": "not_found"}).status_code == 200


def test_the_response_has_the_uniform_headers() -> None:
    response = PaddedJSON(SIZE).response({"error": "x"}, 422, {"retry-after": "60"})
    assert response.status_code == 422
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "60"


def _widening_padding(nbytes: int | None = None) -> str:
    """Padding that is not ASCII: two bytes per character once UTF-8 encoded."""
    return "é" * ((nbytes or 0) * 4 // 3 + 1)


def test_a_body_of_another_size_raises_a_real_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.padded_json.secrets.token_urlsafe", _widening_padding)
    with pytest.raises(PaddedSizeMismatch, match=f"not {SIZE}"):
        PaddedJSON(SIZE).render({"status": "not_found"})


def test_the_size_guard_survives_python_optimisations() -> None:
    """Under ``python -O`` (asserts stripped) the guard still raises."""
    code = (
        "import app.padded_json as p, sys\n"
        "assert False, 'asserts are on'\n"
        "p.secrets.token_urlsafe = lambda n: 'é' * (n * 4 // 3 + 1)\n"
        "try:\n"
        f"    p.PaddedJSON({SIZE}).render({{'status': 'not_found'}})\n"
        "except p.PaddedSizeMismatch:\n"
        "    sys.exit(7)\n"
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 7, done.stderr.decode(errors="replace")
