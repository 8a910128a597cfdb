"""The export's date forms as the API takes them (no Locust import: unit-testable)."""

from __future__ import annotations


def iso_date(exported: str) -> str:
    """An export's date (``D/M/YYYY``, ``DD/MM/YYYY`` or ISO, maybe with a trailing time) in
    the ISO form the API takes, as an attacker's script would reformat it."""
    born = exported.split(" ")[0]
    if "/" in born:
        day, month, year = born.split("/")
        born = f"{year}-{int(month):02d}-{int(day):02d}"
    return born
