"""A small generated dataset and its index (TEST profile): synthetic identities only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtests.harness import build_synthetic_index
from lookup_index.generator import Probe, read_probes
from lookup_index.profiles import TEST


@dataclass(frozen=True)
class Dataset:
    directory: Path
    export: Path
    key: Path
    index: Path
    probes: list[Probe]

    def by_expected(self, expected: str) -> list[Probe]:
        return [p for p in self.probes if p.expected == expected]


def make_dataset(directory: Path, rows: int = 2000, seed: int = 11) -> Dataset:
    made = build_synthetic_index(
        directory,
        rows=rows,
        seed=seed,
        profile=TEST,
        workers=1,
        incident_id="test-incident",
        incident_label="Test incident",
    )
    return Dataset(directory, made.export, made.key, made.index, made.probes())


#: A directory to keep the dataset in across pytest sessions (``make mutation`` sets it: each
#: mutant is its own session, and rebuilding the index for each would cost seconds).
CACHE_ENV = "SELFCHECK_TEST_DATASET_CACHE"
_COMPLETE = "complete"


def cached_dataset(directory: Path) -> Dataset:
    """The dataset kept in ``directory``, built there first if it is not complete yet."""
    if not (directory / _COMPLETE).exists():
        directory.mkdir(parents=True, exist_ok=True)
        made = make_dataset(directory)
        (directory / _COMPLETE).touch()
        return made
    return Dataset(
        directory,
        directory / "export.csv",
        directory / "index.key",
        directory / "index.bin",
        read_probes(directory / "probes.csv"),
    )
