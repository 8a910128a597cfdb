"""The per-row work of a build, as one pure function a worker runs on a chunk of rows.

It validates and normalises each row and stretches every key with Argon2id.
It takes no key: the HMAC with the pepper is applied by the build client
(:meth:`KeyedHasher.seal`), so a worker, local process or Dask worker, never
holds the pepper. Its inputs are rows and its outputs are in memory: nothing
here touches a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lookup_index.categories import UnknownCategory, mask_of
from lookup_index.contact_validation import validate_contact
from lookup_index.csv_input import ExportRow
from lookup_index.exceptions import InvalidIdentity
from lookup_index.keyed_hash import stretch
from lookup_index.normalise import (
    NAME_PART,
    PARTICLE_FORM,
    Identity,
    canonical_identity,
    name_forms,
    nir_matches_birth_date,
)
from lookup_index.profiles import Argon2Profile

#: Variant kinds, in the order the header's ``variant_keys`` lists them.
BIRTH_NAME = "birth_name"
USAGE_NAME = "usage_name"
#: The byte a key's kind is stored as (chunk checkpoints: 1 was "birth name", 0 "usage name").
KIND_CODES = {USAGE_NAME: 0, BIRTH_NAME: 1, PARTICLE_FORM: 2, NAME_PART: 3}
VARIANT_KINDS = tuple(sorted(KIND_CODES, key=KIND_CODES.__getitem__))


@dataclass(frozen=True, slots=True)
class StretchedChunk:
    """What a worker sends back for a chunk: Argon2id outputs and counts, no plaintext."""

    rows: int
    #: ``hash_len`` bytes per key, in key order.
    stretched: bytes
    #: One categories mask byte per key.
    masks: bytes
    #: One byte per key: its kind's code (KIND_CODES); 1 is a record's birth-name key.
    primary: bytes
    #: (row number, reason code): never the rejected value.
    rejects: tuple[tuple[int, str], ...]
    nir_birth_date_mismatch: int
    #: One fixed-size contact plaintext per key (``Contact.encode``), or b"" when the
    #: build seals no contacts. Plaintext: it goes back to the build client only, which
    #: seals it at once (as the rows themselves came from it).
    contacts: bytes = b""
    #: (row number, reason code) of contacts dropped from otherwise valid rows.
    contact_rejects: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class CanonicalKeys:
    """A chunk's keys before stretching: canonical bytes, mask and variant flag per key."""

    canonicals: list[bytes] = field(default_factory=list)
    masks: bytearray = field(default_factory=bytearray)
    primary: bytearray = field(default_factory=bytearray)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    nir_birth_date_mismatch: int = 0
    contacts: bytearray = field(default_factory=bytearray)
    contact_rejects: list[tuple[int, str]] = field(default_factory=list)
    with_contacts: bool = False
    _contact: bytes = b""

    def add(self, canonical: bytes, mask: int, kind: str) -> None:
        self.canonicals.append(canonical)
        self.masks.append(mask)
        self.primary.append(KIND_CODES[kind])
        if self.with_contacts:
            self.contacts += self._contact

    def set_contact(self, row: ExportRow) -> None:
        """The contact every key of ``row`` carries (an empty one when none is valid)."""
        validated = validate_contact(row.email, row.mobile)
        self.contact_rejects.extend((row.number, reason) for reason in validated.dropped)
        self._contact = validated.contact.encode()


def _name_keys(identity: Identity, last_name: str, usage_name: str) -> dict[str, str]:
    """Every folded name form a record is found under, mapped to its kind (first wins)."""
    names = {identity.last_name: BIRTH_NAME}
    raw_names = [last_name]
    if usage_name.strip():
        try:
            usage = identity.with_last_name(usage_name)
        except InvalidIdentity:
            pass  # an unusable usage name still leaves the birth-name keys
        else:
            names.setdefault(usage.last_name, USAGE_NAME)
            raw_names.append(usage_name)
    # Forms a patient types that no query-side folding can reach: glued particles and
    # one part of a compound name (docs/INDEX_FORMAT.md, "Records and name variants").
    for raw in raw_names:
        for form, kind in name_forms(raw).items():
            names.setdefault(form, kind)
    return names


def canonical_keys(
    rows: Sequence[ExportRow], default_mask: int, with_contacts: bool = False
) -> CanonicalKeys:
    """Validate and normalise rows: a birth-name key per valid row, its usage name, variants."""
    keys = CanonicalKeys(with_contacts=with_contacts)
    for row in rows:
        try:
            identity = canonical_identity(
                row.nir, row.birth_date, row.last_name, allow_french_dates=True
            )
            mask = mask_of(row.categories.split(";")) if row.categories.strip() else default_mask
        except InvalidIdentity as exc:
            keys.rejects.append((row.number, exc.reason))
            continue
        except UnknownCategory:
            keys.rejects.append((row.number, "categories"))
            continue
        if not nir_matches_birth_date(identity.nir, identity.birth_date):
            keys.nir_birth_date_mismatch += 1
        if with_contacts:
            keys.set_contact(row)
        for name, kind in _name_keys(identity, row.last_name, row.usage_name).items():
            keys.add(identity.with_name_form(name).canonical(), mask, kind)
    return keys


def stretch_rows(
    rows: Sequence[ExportRow],
    salt: bytes,
    profile: Argon2Profile,
    default_mask: int,
    with_contacts: bool = False,
) -> StretchedChunk:
    """Validate, normalise and stretch one chunk; the same code runs locally and on Dask."""
    keys = canonical_keys(rows, default_mask, with_contacts)
    return StretchedChunk(
        rows=len(rows),
        stretched=b"".join(stretch(c, salt, profile) for c in keys.canonicals),
        masks=bytes(keys.masks),
        primary=bytes(keys.primary),
        rejects=tuple(keys.rejects),
        nir_birth_date_mismatch=keys.nir_birth_date_mismatch,
        contacts=bytes(keys.contacts),
        contact_rejects=tuple(keys.contact_rejects),
    )
