"""A second incident built `--like` the session's dataset index (tests of several incidents
and of the hot reload): a few of the dataset's records re-categorised, plus records of its
own, so an identity can be in the first incident only, the second only, both, or neither."""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.index_set import reader_id
from lookup_index import IndexReader
from lookup_index.builder import BuildOptions, build_index
from lookup_index.generator import Probe, generate, read_probes
from lookup_index.pepper import load_pepper
from lookup_index.profiles import TEST
from tests.support.dataset import Dataset

SECOND_CATEGORIES = ["identity", "contact"]


@dataclass(frozen=True)
class TwoIncidents:
    first: Path
    second: Path
    both: list[Probe]  # in both incidents
    first_only: list[Probe]
    second_only: list[Probe]
    neither: list[Probe]


def _compact(nir: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", nir)


def build_like(
    export: Path, out: Path, dataset: Dataset, incident: str, salt: bytes | None
) -> None:
    build_index(
        BuildOptions(
            input=export,
            out=out,
            pepper=load_pepper(dataset.key),
            profile=TEST,
            workers=1,
            incident_id=incident,
            incident_label=f"Incident {incident}",
            salt=salt,
        )
    )


def build_two_incidents(dataset: Dataset, work: Path) -> TwoIncidents:
    generate(300, 99, work / "own.csv", work / "own-probes.csv", probes=40)
    affected = dataset.by_expected("affected")
    shared, first_only = affected[:4], affected[4:8]
    shared_nirs = {_compact(p.nir) for p in shared}
    with dataset.export.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    with (work / "own.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        fields, own = reader.fieldnames, list(reader)
    assert fields is not None
    taken = [r for r in rows if _compact(r["nir"]) in shared_nirs]
    assert len(taken) >= len(shared)
    with (work / "second.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter=";")
        writer.writeheader()
        for row in taken:
            writer.writerow({**row, "categories": ";".join(SECOND_CATEGORIES)})
        writer.writerows(own)
    with IndexReader.open(dataset.index) as first:
        salt = first.header.salt
    build_like(work / "second.csv", work / "second.bin", dataset, "second-incident", salt)
    own_probes = read_probes(work / "own-probes.csv")
    return TwoIncidents(
        first=dataset.index,
        second=work / "second.bin",
        both=shared,
        first_only=[p for p in first_only if _compact(p.nir) not in shared_nirs],
        second_only=[p for p in own_probes if p.expected == "affected"][:4],
        neither=dataset.by_expected("not_found")[:4],
    )


def index_id(path: Path) -> str:
    """The id /readyz and the info metric show for the index at ``path``."""
    with IndexReader.open(path) as reader:
        return reader_id(reader)


def replace_index(source: Path, target: Path) -> None:
    """As an operator should: copy beside it, then rename over it (atomic)."""
    temporary = target.with_name(target.name + ".new")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
