"""SELFCHECK_CONTENT_DIR: the operator's notice, incident texts and advice, or one-line refusal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.content import Content, ContentRefused
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, dataset_env, run_refusal
from tests.support.dataset import Dataset

NOTICE = {
    lang: {
        "controller": f"Groupement Exemple <santé> ({lang})",
        "dpo_contact": f"dpo@groupement.example ({lang})",
        "legal_basis": f"Article 6.1.e ({lang})",
        "host": f"Hébergeur HDS Exemple ({lang})",
        "retention": f"24 h ({lang})",
    }
    for lang in ("fr", "en")
}
INCIDENTS = {
    "test-incident": {
        "fr": {"label": "Fuite du logiciel de test", "description": "Dossiers du cabinet test."},
        "en": {"label": "Test software breach", "description": "Records of the test practice."},
    }
}


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "content"
    directory.mkdir()
    (directory / "privacy.json").write_text(json.dumps(NOTICE), "utf-8")
    (directory / "incidents.json").write_text(json.dumps(INCIDENTS), "utf-8")
    return directory


async def test_a_content_dir_overrides_the_notice_and_the_incident_label(
    app_factory: Callable[..., Any], content_dir: Path, dataset: Dataset
) -> None:
    _, http = await app_factory(content_dir=content_dir, **GENEROUS_LIMITS)
    page = (await http.get("/privacy")).text
    for lang in ("fr", "en"):
        assert "Groupement Exemple &lt;santé&gt;" in page  # escaped, never markup
        for field in ("dpo_contact", "legal_basis", "host", "retention"):
            assert NOTICE[lang][field] in page
    assert "<santé>" not in page
    widget = orjson.loads((await http.get("/widget/i18n/en.json")).content)
    assert "Groupement Exemple <santé> (en)" in widget["privacy"]["operator"]
    assert "dpo@groupement.example (en)" in widget["privacy"]["operator"]
    probe = dataset.by_expected("affected")[0]
    for lang in ("fr", "en"):
        response = await http.post(CHECK, json=body_of(probe, lang=lang))
        assert len(response.content) == 8192
        answer = orjson.loads(response.content)
        assert answer["incident"]["label"] == INCIDENTS["test-incident"][lang]["label"]
        assert answer["incident"]["description"] == INCIDENTS["test-incident"][lang]["description"]
        assert answer["incidents"][0]["label"] == INCIDENTS["test-incident"][lang]["label"]


async def test_without_a_content_dir_the_bundled_texts_serve(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(**GENEROUS_LIMITS)
    assert "Responsable du traitement" in (await http.get("/privacy")).text
    answer = orjson.loads(
        (await http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))).content
    )
    assert answer["incident"] == {
        "id": "test-incident",
        "label": "Test incident",
        "description": "",
    }


BAD_FILES = [
    ("privacy.json", json.dumps({"fr": NOTICE["fr"]}), "privacy.json: en: Field required"),
    (
        "privacy.json",
        json.dumps({**NOTICE, "fr": {**NOTICE["fr"], "dpo_contact": ""}}),
        "privacy.json: fr.dpo_contact: String should have at least 1 character",
    ),
    ("privacy.json", json.dumps({**NOTICE, "de": NOTICE["fr"]}), "privacy.json: de: Extra inputs"),
    ("incidents.json", "{not json", "incidents.json is not readable JSON"),
    ("incidents.json", json.dumps({"x": {"fr": {}}}), "incidents.json [x]: fr.label: Field"),
    ("advice.en.json", json.dumps({"categories": {}}), "advice.en.json: affected: Field"),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD_FILES)
def test_every_bad_content_file_is_named_in_one_line(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    (tmp_path / name).write_text(text, "utf-8")
    with pytest.raises(ContentRefused) as refused:
        Content.load(tmp_path)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("content file ")
    assert reason in message


def test_a_bad_content_file_is_refused_at_start_up_in_one_line(
    dataset: Dataset, tmp_path: Path
) -> None:
    name, text, reason = BAD_FILES[1]
    (tmp_path / name).write_text(text, "utf-8")
    code, output = run_refusal(
        [sys.executable, "-m", "app", "serve"],
        dataset_env(dataset, SELFCHECK_CONTENT_DIR=str(tmp_path)),
    )
    assert code != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("selfcheck cannot start: content file ")
    assert reason in lines[0]
