"""The JSON header of an index, in format versions 1 and 2 (docs/INDEX_FORMAT.md).

Version 2 adds the build manifest (build id, salt, Argon2 parameters and the
``params_id`` that several incidents share), the value section's width and
fields, and the record/variant counts. Version 1 headers still decode, with
the version 2 fields at their neutral defaults.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lookup_index.exceptions import IndexFormatError
from lookup_index.keyed_hash import DIGEST_SIZE
from lookup_index.normalise import CANONICAL_VERSION
from lookup_index.profiles import Argon2Profile, profile_from_header

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
#: The one value field every version has: byte 0 of each value, the exposed categories.
CATEGORY_MASK_FIELD = {"name": "categories", "offset": 0, "size": 1, "type": "u8_bitmask"}
MAX_VALUE_SIZE = 4096


def params_id(salt: bytes, profile: Argon2Profile) -> str:
    """Names the (salt, Argon2 parameters) pair: indexes sharing it need one hash per query."""
    params = {k: v for k, v in profile.as_dict().items() if k != "name"}
    text = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(b"patient-breach-selfcheck/params/v2\0" + salt + text).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class IndexHeader:
    """Everything about an index except its keys."""

    profile: Argon2Profile
    salt: bytes
    key_check: bytes
    count: int
    incident_id: str
    incident_label: str
    incident_categories: tuple[str, ...]
    categories: tuple[str, ...]
    created_at: str
    #: Random, set once per build and kept by a resumed build; "" for a version 1 file.
    build_id: str = ""
    #: Distinct source records behind the keys (0 when unknown, as in version 1).
    records: int = 0
    #: Keys hashed per kind of name variant, before duplicates merge.
    variant_keys: dict[str, int] = field(default_factory=dict)
    value_size: int = 1
    value_fields: tuple[dict[str, Any], ...] = (CATEGORY_MASK_FIELD,)
    format_version: int = FORMAT_VERSION
    #: The identity rules the keys were made with (``build.canonical``; "v1" when absent).
    canonical: str = CANONICAL_VERSION

    @property
    def params_id(self) -> str:
        return params_id(self.salt, self.profile)

    def to_json(self) -> dict[str, Any]:
        if self.format_version == 1:
            return self._v1_json()
        return {
            "format_version": 2,
            "digest_size": DIGEST_SIZE,
            "count": self.count,
            "value_size": self.value_size,
            "value_fields": [dict(f) for f in self.value_fields],
            "categories": list(self.categories),
            "incident": self._incident_json(),
            "build": {
                "id": self.build_id,
                "created_at": self.created_at,
                "salt": self.salt.hex(),
                "profile": self.profile.as_dict(),
                "params_id": self.params_id,
                "key_check": self.key_check.hex(),
                "canonical": self.canonical,
            },
            "records": {"distinct": self.records, "variant_keys": dict(self.variant_keys)},
        }

    def _incident_json(self) -> dict[str, Any]:
        return {
            "id": self.incident_id,
            "label": self.incident_label,
            "categories": list(self.incident_categories),
        }

    def _v1_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "profile": self.profile.as_dict(),
            "salt": self.salt.hex(),
            "key_check": self.key_check.hex(),
            "count": self.count,
            "digest_size": DIGEST_SIZE,
            "value_size": 1,
            "incident": self._incident_json(),
            "categories": list(self.categories),
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> IndexHeader:
        try:
            if data["digest_size"] != DIGEST_SIZE:
                raise IndexFormatError("index uses an unsupported digest or value size")
            if version == 1:
                return cls._from_v1(data)
            return cls._from_v2(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFormatError(f"index header is malformed ({type(exc).__name__})") from None

    @classmethod
    def _from_v1(cls, data: dict[str, Any]) -> IndexHeader:
        if data["value_size"] != 1:
            raise IndexFormatError("index uses an unsupported digest or value size")
        incident = data["incident"]
        return cls(
            profile=profile_from_header(data["profile"]),
            salt=bytes.fromhex(data["salt"]),
            key_check=bytes.fromhex(data["key_check"]),
            count=int(data["count"]),
            incident_id=str(incident["id"]),
            incident_label=str(incident["label"]),
            incident_categories=tuple(str(c) for c in incident["categories"]),
            categories=tuple(str(c) for c in data["categories"]),
            created_at=str(data["created_at"]),
            format_version=1,
            canonical="v1",
        )

    @classmethod
    def _from_v2(cls, data: dict[str, Any]) -> IndexHeader:
        value_size = data["value_size"]
        fields = tuple(dict(f) for f in data["value_fields"])
        # Fixed stride is what keeps lookups one multiply away; the mask must be at byte 0.
        if type(value_size) is not int or not 1 <= value_size <= MAX_VALUE_SIZE:
            raise IndexFormatError("index uses an unsupported digest or value size")
        if not fields or fields[0] != CATEGORY_MASK_FIELD:
            raise IndexFormatError("index value fields do not start with the category mask")
        if any(int(f["offset"]) + int(f["size"]) > value_size for f in fields):
            raise IndexFormatError("index value fields overflow the value size")
        build, incident, records = data["build"], data["incident"], data["records"]
        header = cls(
            profile=profile_from_header(build["profile"]),
            salt=bytes.fromhex(build["salt"]),
            key_check=bytes.fromhex(build["key_check"]),
            count=int(data["count"]),
            incident_id=str(incident["id"]),
            incident_label=str(incident["label"]),
            incident_categories=tuple(str(c) for c in incident["categories"]),
            categories=tuple(str(c) for c in data["categories"]),
            created_at=str(build["created_at"]),
            build_id=str(build["id"]),
            records=int(records["distinct"]),
            variant_keys={str(k): int(v) for k, v in records["variant_keys"].items()},
            value_size=value_size,
            value_fields=fields,
            canonical=str(build.get("canonical", "v1")),
        )
        if build["params_id"] != header.params_id:
            raise IndexFormatError("index params_id does not match its salt and parameters")
        return header
