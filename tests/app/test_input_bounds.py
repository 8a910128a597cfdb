"""The input rules have one home, lookup_index/normalise.py: the API's schema imports them,
and the widget's copy (JavaScript cannot import Python) is compared with them here, so the
form never blocks what the server accepts nor sends what it refuses."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from app.schemas import CheckRequest
from lookup_index import normalise

WIDGET_JS = (resources.files("app") / "static" / "widget" / "widget.js").read_text("utf-8")


def _js_const(name: str) -> str:
    found = re.search(rf"^\s*const {name} = (.+?);\s*$", WIDGET_JS, re.MULTILINE | re.DOTALL)
    assert found, f"widget.js has no const {name}"
    return found.group(1)


def _constraint(field: str, kind: str) -> int:
    values = [
        getattr(m, kind) for m in CheckRequest.model_fields[field].metadata if hasattr(m, kind)
    ]
    assert len(values) == 1
    return int(values[0])


def test_the_schema_reads_the_bounds_from_normalise() -> None:
    assert _constraint("nir", "max_length") == normalise.MAX_NIR_INPUT_LENGTH
    assert _constraint("last_name", "max_length") == normalise.MAX_NAME_LENGTH


@pytest.mark.parametrize(
    ("js_name", "python_value"),
    [
        ("MAX_NIR_INPUT", normalise.MAX_NIR_INPUT_LENGTH),
        ("MAX_NAME", normalise.MAX_NAME_LENGTH),
    ],
)
def test_the_widget_limits_are_normalises(js_name: str, python_value: int) -> None:
    assert int(_js_const(js_name)) == python_value


def test_the_widget_earliest_birth_date_is_normalises() -> None:
    fields = dict(re.findall(r"(year|month|day): (\d+)", _js_const("EARLIEST")))
    earliest = normalise.EARLIEST_BIRTH_DATE
    assert {k: int(v) for k, v in fields.items()} == {
        "year": earliest.year,
        "month": earliest.month,
        "day": earliest.day,
    }


def test_the_widget_nir_shape_and_sex_digits_are_normalises() -> None:
    assert _js_const("NIR_SHAPE") == f"/^{normalise._NIR_SHAPE.pattern}$/"
    assert set(json.loads(_js_const("SEX_DIGITS"))) == set(normalise._SEX_DIGITS)


def test_the_widget_letter_folds_are_normalises() -> None:
    pairs = re.findall(r'"(.)": "([A-Z]+)"', _js_const("LETTER_FOLDS"))
    python_folds = {chr(code): text for code, text in normalise._LETTER_FOLDS.items()}
    assert dict(pairs) == python_folds
