"""Fixtures for the lookup_index tests: one generated export and one index per session.

Generating and building take about a second with the TEST profile, so the
round-trip, privacy and CLI tests share them instead of rebuilding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lookup_index.builder import BuildOptions, BuildSummary, build_index
from lookup_index.generator import GenerateSummary, Probe, generate, read_probes
from lookup_index.profiles import TEST
from tests.lookup_index.helpers import PEPPER

GENERATED_ROWS = 3000
GENERATED_SEED = 7


@dataclass(frozen=True)
class Generated:
    export: Path
    probes_path: Path
    probes: list[Probe]
    summary: GenerateSummary


@dataclass(frozen=True)
class Built:
    index: Path
    summary: BuildSummary


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    directory = tmp_path_factory.mktemp("generated")
    export, probes = directory / "export.csv", directory / "probes.csv"
    summary = generate(GENERATED_ROWS, GENERATED_SEED, export, probes)
    return Generated(export, probes, read_probes(probes), summary)


@pytest.fixture(scope="session")
def built(generated: Generated, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("built") / "index.bin"
    options = BuildOptions(
        input=generated.export,
        out=out,
        pepper=PEPPER,
        profile=TEST,
        workers=1,
        incident_id="test-incident",
        incident_label="Synthetic test incident",
    )
    return Built(out, build_index(options))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.key"
    path.write_bytes(PEPPER)
    return path
