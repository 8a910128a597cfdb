"""The demo of ``make run``: a synthetic export, its index, and identities to try.

Needs the build tools (``pip install '.[build]'``: Faker); the API itself never imports it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lookup_index.builder import BuildOptions, build_index
from lookup_index.exceptions import LookupIndexError
from lookup_index.generator import Probe, generate, read_probes
from lookup_index.pepper import generate_pepper_file, load_pepper
from lookup_index.profiles import FAST
from lookup_index.reader import IndexReader

DEMO_ROWS = 3000
DEMO_SEED = 2026
#: A person trying the demo checks several identities in a minute; production keeps 5/minute.
DEMO_NETWORK_LIMITS = "30/minute;200/hour;1000/day"


def _curl(probe: Probe, port: int) -> str:
    body = json.dumps(
        {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name},
        ensure_ascii=False,
    )
    return (
        f"curl -sS -w '\\n=> HTTP %{{http_code}}, %{{size_download}} bytes\\n' "
        f"-H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:{port}/v1/check"
    )


def prepare_demo(directory: Path, rows: int = DEMO_ROWS) -> tuple[Path, Path, list[Probe]]:
    """Generate a synthetic export and build its index (fast profile) unless already there."""
    directory.mkdir(parents=True, exist_ok=True)
    key, index = directory / "demo.key", directory / "demo-index.bin"
    export, probes = directory / "demo-export.csv", directory / "demo-probes.csv"
    if not key.exists():
        generate_pepper_file(key)
    if not index.exists() or not probes.exists() or not current_rules(index):
        print(f"generating {rows} synthetic patients and building the demo index...")
        generate(rows, DEMO_SEED, export, probes, probes=min(rows, 200))
        summary = build_index(
            BuildOptions(
                input=export,
                out=index,
                pepper=load_pepper(key),
                profile=FAST,
                incident_id="demo-2026",
                incident_label="Démonstration : fuite de données d'un logiciel médical",
            )
        )
        print(f"built {index}: {summary.indexed_keys} keys in {summary.seconds:.1f} s")
    return key, index, read_probes(probes)


def current_rules(index: Path) -> bool:
    """Whether a demo index left by an earlier version hashes with today's identity rules."""
    try:
        with IndexReader.open(index, verify_checksum=False) as reader:
            reader.check_identity_rules()
    except LookupIndexError:
        return False  # older rules, or damaged: rebuilt, it is the demo's own
    return True


def demo_identities(probes: list[Probe]) -> list[Probe]:
    """Two affected identities and one not found (born in the 1900s or 2000s, easy to type)."""
    affected = [p for p in probes if p.expected == "affected" and p.birth_date[:2] in ("19", "20")]
    not_found = [p for p in probes if p.expected == "not_found"]
    return affected[:2] + not_found[:1]


def print_identities(chosen: list[Probe], port: int) -> None:
    print("\nIdentities to try (synthetic, generated for this demo):")
    for probe in chosen:
        print(f"  {probe.expected:<9}  NIR {probe.nir}  born {probe.birth_date}", end="")
        print(f"  name {probe.last_name}")
    print("\nOr with curl (both answers have exactly the same length):")
    for probe in chosen:
        print(f"  {_curl(probe, port)}")
    print(f"\nOpen http://127.0.0.1:{port}/ for the practice demo page. Ctrl-C stops.\n")
    sys.stdout.flush()
