from __future__ import annotations

import httpx

from tests.support.dataset import Dataset


async def test_affected_and_not_found_have_the_same_length(
    client: httpx.AsyncClient, dataset: Dataset
) -> None:
    hit = dataset.by_expected("affected")[0]
    miss = dataset.by_expected("not_found")[0]
    answers = []
    for probe in (hit, miss):
        answers.append(
            await client.post(
                "/v1/check",
                json={"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name},
            )
        )
    assert [a.json()["status"] for a in answers] == ["affected", "not_found"]
    assert len(answers[0].content) == len(answers[1].content)
