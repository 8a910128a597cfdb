"""The fixed vocabulary of exposed data categories, stored per record as a bitmask."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Order matters: bit ``i`` of a record's value is ``CATEGORIES[i]``. The index
#: header repeats this list so a reader never depends on this constant's order.
CATEGORIES: tuple[str, ...] = (
    "identity",
    "contact",
    "nir",
    "birth_date",
    "address",
    "phone",
    "email",
    "clinical_notes",
)

#: What the press reports for this incident; the builder's default for ``--categories``.
DEFAULT_INCIDENT_CATEGORIES: tuple[str, ...] = ("identity", "nir", "birth_date")


class UnknownCategory(ValueError):
    """A category name outside the vocabulary."""


def mask_of(names: Iterable[str], vocabulary: Sequence[str] = CATEGORIES) -> int:
    mask = 0
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        try:
            mask |= 1 << vocabulary.index(name)
        except ValueError:
            raise UnknownCategory(name) from None
    return mask


def names_of(mask: int, vocabulary: Sequence[str] = CATEGORIES) -> list[str]:
    return [name for bit, name in enumerate(vocabulary) if mask & (1 << bit)]
