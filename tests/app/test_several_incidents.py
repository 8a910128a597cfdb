"""Several incidents, one hash: a two-incident set answers both, each with its categories.

The second index is built `--like` the session's (same salt, parameters and key) from a
few of its records (re-categorised) plus records of its own, so an identity can be in
the first incident only, the second only, both, or neither. Every answer keeps the
fixed size; files that cannot share one hash, or two files of one incident, are refused
at start-up in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.index_set import IndexSetRefused, match_set
from lookup_index import IndexReader, LookupIndexError
from lookup_index.generator import Probe
from lookup_index.pepper import load_pepper
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, dataset_env, run_refusal
from tests.support.dataset import Dataset
from tests.support.incidents import SECOND_CATEGORIES, TwoIncidents, build_like, build_two_incidents


@pytest.fixture(scope="module")
def two(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TwoIncidents:
    return build_two_incidents(dataset, tmp_path_factory.mktemp("incidents"))


async def _answers(http: Any, probes: list[Probe]) -> list[dict[str, Any]]:
    answers = []
    for probe in probes:
        response = await http.post(CHECK, json=body_of(probe, lang="en"))
        assert response.status_code == 200
        assert len(response.content) == 8192
        answers.append(orjson.loads(response.content))
    return answers


def _affected_in(answer: dict[str, Any]) -> list[str]:
    return [i["id"] for i in answer["incidents"] if i["affected"]]


@pytest.mark.parametrize("form", ["list", "directory"])
async def test_a_two_incident_set_answers_both(
    app_factory: Callable[..., Any], two: TwoIncidents, tmp_path: Path, form: str
) -> None:
    if form == "list":
        index_path = Path(f"{two.first},{two.second}")
    else:
        index_path = tmp_path / "served"
        index_path.mkdir()
        (index_path / "a-first.bin").symlink_to(two.first)
        (index_path / "b-second.bin").symlink_to(two.second)
    _, http = await app_factory(index_path=index_path, **GENEROUS_LIMITS)
    served = ["test-incident", "second-incident"]
    for answer in await _answers(http, two.both):
        assert answer["status"] == "affected"
        assert [i["id"] for i in answer["incidents"]] == served
        assert _affected_in(answer) == served
        assert answer["incidents"][1]["exposed"] == SECOND_CATEGORIES
        assert set(SECOND_CATEGORIES) <= set(answer["exposed"])
    for answer, probe in zip(await _answers(http, two.first_only), two.first_only, strict=True):
        assert _affected_in(answer) == ["test-incident"]
        assert answer["incidents"][0]["exposed"] == list(probe.categories)
        assert answer["incidents"][1]["exposed"] == []
        assert answer["incident"]["id"] == "test-incident"
    for answer in await _answers(http, two.second_only):
        assert _affected_in(answer) == ["second-incident"]
        assert answer["incident"]["id"] == "second-incident"
    for answer in await _answers(http, two.neither):
        assert answer["status"] == "not_found"
        assert _affected_in(answer) == []
        assert answer["exposed"] == []


def test_files_that_cannot_share_one_hash_are_refused_in_one_line(
    dataset: Dataset, two: TwoIncidents, tmp_path: Path
) -> None:
    build_like(dataset.export, tmp_path / "other-salt.bin", dataset, "third-incident", None)
    code, output = run_refusal(
        [sys.executable, "-m", "app", "serve"],
        dataset_env(dataset, SELFCHECK_INDEX_PATH=f"{two.first},{tmp_path / 'other-salt.bin'}"),
    )
    assert code != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("selfcheck cannot start: ")
    assert "do not share salt and Argon2 parameters" in lines[0]
    assert "--like" in lines[0]


def test_two_files_of_one_incident_are_refused(dataset: Dataset, two: TwoIncidents) -> None:
    readers = [IndexReader.open(two.second), IndexReader.open(two.second)]
    try:
        with pytest.raises(IndexSetRefused, match="are both incident 'second-incident'"):
            match_set(readers, load_pepper(dataset.key))
    finally:
        for reader in readers:
            reader.close()


def test_a_file_made_with_other_identity_rules_is_refused_in_any_position(
    dataset: Dataset, two: TwoIncidents
) -> None:
    """Issue 14: a file hashed with older identity rules would answer "not found" for every
    name the rules now fold differently; refused, even behind a current first file."""
    readers = [IndexReader.open(two.first), IndexReader.open(two.second)]
    readers[1].header = replace(readers[1].header, canonical="v1")
    try:
        with pytest.raises(LookupIndexError, match="identity rules v1"):
            match_set(readers, load_pepper(dataset.key))
    finally:
        for reader in readers:
            reader.close()
