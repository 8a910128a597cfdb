"""The recall harness: how many plausible typings find their record, per variant kind.

Each typing of a variants file (:mod:`lookup_index.patient_typings`, written by
``lookup-index generate --variants``) goes through exactly what the API does:
:func:`canonical_identity` in the API's strict mode, one keyed hash, one lookup.
A typing the API would refuse counts as not found: to the patient it is the
same false reassurance. Near misses count as false matches when found.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookup_index.exceptions import InputFileError, InvalidIdentity
from lookup_index.key_backend import KeyMaterial
from lookup_index.normalise import canonical_identity
from lookup_index.patient_typings import read_typings
from lookup_index.reader import IndexReader

#: Issue 14's targets: share of plausible typings found, overall and in every kind.
RECALL_TARGET = 99.5
KIND_RECALL_TARGET = 98.0
FALSE_MATCH_TARGET = 0


@dataclass(slots=True)
class RecallReport:
    typed: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    #: Typings the API would refuse as malformed (counted in ``typed``, never found).
    refused: Counter[str] = field(default_factory=Counter)
    near_misses: Counter[str] = field(default_factory=Counter)
    false_matches: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        total = sum(self.typed.values())
        return 100 * sum(self.found.values()) / total if total else 0.0

    def kind_recall(self, kind: str) -> float:
        return 100 * self.found[kind] / self.typed[kind] if self.typed[kind] else 0.0

    @property
    def false_match_count(self) -> int:
        return sum(self.false_matches.values())

    def failures(self) -> list[str]:
        """The targets this report misses, one phrase each (empty: all met)."""
        failed = []
        if self.recall < RECALL_TARGET:
            failed.append(f"recall {self.recall:.2f}% < {RECALL_TARGET}%")
        for kind in sorted(self.typed):
            if (share := self.kind_recall(kind)) < KIND_RECALL_TARGET:
                failed.append(f"{kind} recall {share:.2f}% < {KIND_RECALL_TARGET}%")
        if self.false_match_count > FALSE_MATCH_TARGET:
            failed.append(f"{self.false_match_count} false matches")
        return failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "recall_percent": round(self.recall, 3),
            "typings": sum(self.typed.values()),
            "by_kind": {
                kind: {
                    "typed": self.typed[kind],
                    "found": self.found[kind],
                    "refused": self.refused[kind],
                    "recall_percent": round(self.kind_recall(kind), 3),
                }
                for kind in sorted(self.typed)
            },
            "near_misses": sum(self.near_misses.values()),
            "false_matches": self.false_match_count,
            "false_matches_by_kind": {
                kind: {"tried": self.near_misses[kind], "matched": self.false_matches[kind]}
                for kind in sorted(self.near_misses)
            },
        }


def measure_recall(index: Path, key: KeyMaterial, variants: Path) -> RecallReport:
    """Look every typing of ``variants`` up in ``index``, as the API would."""
    report = RecallReport()
    with IndexReader.open(index, verify_checksum=False) as reader:
        hasher = reader.hasher(key)
        try:
            for typing in read_typings(variants):
                try:
                    identity = canonical_identity(typing.nir, typing.birth_date, typing.last_name)
                except InvalidIdentity:
                    found = False
                    if typing.expected == "match":
                        report.refused[typing.kind] += 1
                else:
                    found, _ = reader.lookup_mask(hasher.digest(identity.canonical()))
                if typing.expected == "match":
                    report.typed[typing.kind] += 1
                    report.found[typing.kind] += found
                else:
                    report.near_misses[typing.kind] += 1
                    report.false_matches[typing.kind] += found
        except FileNotFoundError:
            raise InputFileError(f"variants file not found: {variants}") from None
        except (ValueError, KeyError) as exc:
            raise InputFileError(f"variants file is not readable ({exc})") from None
    return report


def format_report(report: RecallReport) -> str:
    """A table for the operator: recall per kind, then false matches per near-miss kind."""
    lines = [f"{'kind':<22}{'typed':>8}{'found':>8}{'refused':>9}{'recall':>10}"]
    for kind in sorted(report.typed):
        lines.append(
            f"{kind:<22}{report.typed[kind]:>8}{report.found[kind]:>8}"
            f"{report.refused[kind]:>9}{report.kind_recall(kind):>9.2f}%"
        )
    lines.append(f"{'overall':<22}{sum(report.typed.values()):>8}{sum(report.found.values()):>8}"
                 f"{sum(report.refused.values()):>9}{report.recall:>9.2f}%")  # fmt: skip
    lines.append(f"{'near miss':<22}{'tried':>8}{'matched':>8}")
    for kind in sorted(report.near_misses):
        lines.append(f"{kind:<22}{report.near_misses[kind]:>8}{report.false_matches[kind]:>8}")
    return "\n".join(lines)
