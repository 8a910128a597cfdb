"""A small generated dataset and its index (TEST profile): synthetic identities only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookup_index.builder import BuildOptions, build_index
from lookup_index.generator import Probe, generate, read_probes
from lookup_index.pepper import generate_pepper_file, load_pepper
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
    directory.mkdir(parents=True, exist_ok=True)
    export, probes, key, index = (
        directory / "export.csv",
        directory / "probes.csv",
        directory / "test.key",
        directory / "index.bin",
    )
    generate(rows, seed, export, probes, probes=min(rows, 300))
    generate_pepper_file(key)
    build_index(
        BuildOptions(
            input=export,
            out=index,
            pepper=load_pepper(key),
            profile=TEST,
            workers=1,
            incident_id="test-incident",
            incident_label="Test incident",
        )
    )
    return Dataset(directory, export, key, index, read_probes(probes))
