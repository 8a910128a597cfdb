"""Argon2id parameter profiles, named and kept as data (recorded in every index header)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Length of the raw Argon2 output fed into the HMAC.
ARGON2_HASH_LEN = 32


@dataclass(frozen=True, slots=True)
class Argon2Profile:
    """Argon2id cost parameters. ``memory_cost`` is in KiB, as in argon2-cffi."""

    name: str
    time_cost: int
    memory_cost: int
    parallelism: int
    hash_len: int = ARGON2_HASH_LEN

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Only for testing! Cheapest legal parameters, so test suites build indexes in milliseconds.
TEST = Argon2Profile("test", time_cost=1, memory_cost=8, parallelism=1)
#: For demos and very large emergency builds: one pass over 8 MiB.
FAST = Argon2Profile("fast", time_cost=1, memory_cost=8 * 1024, parallelism=1)
#: OWASP's minimum recommendation for Argon2id (t=2, m=19 MiB, p=1); the default for ``build``.
STANDARD = Argon2Profile("standard", time_cost=2, memory_cost=19 * 1024, parallelism=1)

PROFILES: dict[str, Argon2Profile] = {p.name: p for p in (TEST, FAST, STANDARD)}
DEFAULT_PROFILE = STANDARD


def profile_from_header(data: dict[str, Any]) -> Argon2Profile:
    """Rebuild a profile from an index header (parameters win over the name)."""
    return Argon2Profile(
        name=str(data["name"]),
        time_cost=int(data["time_cost"]),
        memory_cost=int(data["memory_cost"]),
        parallelism=int(data["parallelism"]),
        hash_len=int(data["hash_len"]),
    )
