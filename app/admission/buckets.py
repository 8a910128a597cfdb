"""The admission policy as data: one table of buckets, in the order they are checked.

A request is checked stage by stage (junk, network, ceiling, identity) and, within a
stage, bucket by bucket in table order; the first refusal stops it, so a network
over its limit never spends a global ceiling, and a request refused by a ceiling
never spends its identity budget. ``app.rate_limit.RateLimits`` runs the table.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from limits import RateLimitItem

from app.client_address import IPAddress
from app.limit_syntax import parse_limits
from lookup_index import Identity

if TYPE_CHECKING:  # settings validate limit strings with parse_limits, at run time too
    from app.settings import Settings

Strategy = Literal["moving-window", "sliding-window-counter", "fixed-window"]


class Stage(enum.IntEnum):
    """When a bucket is counted."""

    JUNK = 1  # a refused body (413, 415, 422): its own cheap limit, nothing else
    NETWORK = 2  # the class's network tiers
    CEILING = 3  # the class's global ceiling: tested here, spent only when the hash runs
    IDENTITY = 4  # the class's identity buckets


class Admission(enum.Enum):
    """Which requests a bucket counts."""

    PROVEN = "proven"  # a valid, fresh, unspent proof of work
    UNPROVEN = "unproven"  # anything else
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a key function may read: the client address and, after validation, the identity."""

    address: IPAddress | None
    identity: Identity | None = None


#: The value a bucket is keyed on (HMAC'd before it reaches the store), or None: not counted.
KeyFunction = Callable[[Subject], str | None]


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    stage: Stage
    admission: Admission
    key: KeyFunction
    limits: tuple[RateLimitItem, ...]
    strategy: Strategy
    #: Which HMAC key hides the value: networks and identities never share one.
    secret: Literal["network", "identity", "global"]

    def applies_to(self, admission: Admission) -> bool:
        return self.admission in (Admission.ANY, admission)


# --- key functions ---------------------------------------------------------------------
# Requests without a peer address (a Unix socket) share one bucket per tier: fail closed.
_UNKNOWN = "unknown"


def _prefix(version: int, bits: int) -> KeyFunction:
    def key(subject: Subject) -> str | None:
        address = subject.address
        if address is None:
            return f"{version}/{bits}:{_UNKNOWN}"
        if address.version != version:
            return None
        return f"{version}/{bits}:{ipaddress.ip_network((address, bits), strict=False)}"

    key.__name__ = f"ipv{version}_{bits}"
    return key


def subscriber(subject: Subject) -> str | None:
    """The unit one subscriber controls: an IPv4 address or an IPv6 /64."""
    address = subject.address
    if address is None or address.version == 4:
        return _prefix(4, 32)(subject)
    return _prefix(6, 64)(subject)


def site(subject: Subject) -> str | None:
    """What one site or small operator holds: an IPv4 /24 or an IPv6 /48."""
    address = subject.address
    if address is None or address.version == 4:
        return _prefix(4, 24)(subject)
    return _prefix(6, 48)(subject)


def nir(subject: Subject) -> str | None:
    return None if subject.identity is None else "nir:" + subject.identity.nir


def name_and_birth(subject: Subject) -> str | None:
    identity = subject.identity
    if identity is None:
        return None
    # The variant-independent name form: every typing of one name spends one budget.
    name = identity.bucket_name or identity.last_name
    return f"namebirth:{name}|{identity.birth_date.isoformat()}"


def nir_prefix(subject: Subject) -> str | None:
    """Sex, year, month, place of birth: what completing a victim's NIR keeps fixed."""
    return None if subject.identity is None else "nirprefix:" + subject.identity.nir[:10]


def everyone(subject: Subject) -> str | None:
    return "all"


def bucket_table(settings: Settings) -> tuple[Bucket, ...]:
    """The policy of the README's table, in checking order."""
    s = settings
    proven, unproven, any_ = Admission.PROVEN, Admission.UNPROVEN, Admission.ANY
    moving: Strategy = "moving-window"
    sliding: Strategy = "sliding-window-counter"

    def b(
        name: str,
        stage: Stage,
        admission: Admission,
        key: KeyFunction,
        limits: str,
        strategy: Strategy,
        secret: Literal["network", "identity", "global"],
    ) -> Bucket:
        return Bucket(name, stage, admission, key, tuple(parse_limits(limits)), strategy, secret)

    net, ceil, ident = Stage.NETWORK, Stage.CEILING, Stage.IDENTITY
    v4_24, v6_48, v6_32 = _prefix(4, 24), _prefix(6, 48), _prefix(6, 32)
    nb = name_and_birth
    table = (
        b("junk", Stage.JUNK, any_, subscriber, s.limits_junk, sliding, "network"),
        # Unproven: small, exact (moving window) budgets on every tier, wide ones included.
        b("net", net, unproven, subscriber, s.limits_per_network, moving, "network"),
        b("v4-24", net, unproven, v4_24, s.limits_per_ipv4_24, moving, "network"),
        b("v6-48", net, unproven, v6_48, s.limits_per_ipv6_48, moving, "network"),
        b("v6-32", net, unproven, v6_32, s.limits_per_ipv6_32, moving, "network"),
        # Proven: an allowance per address big enough for a carrier NAT; no wide tier, since
        # a /32 can be a whole ISP (its cost escalates instead, see RateLimits.network_step).
        b("addr", net, proven, subscriber, s.limits_per_address_proven, sliding, "network"),
        b("ceiling", ceil, unproven, everyone, s.global_limit, sliding, "global"),
        b("ceiling-p", ceil, proven, everyone, s.global_limit_proven, sliding, "global"),
        b("nir", ident, proven, nir, s.limits_per_identity, moving, "identity"),
        b("namebirth", ident, proven, nb, s.limits_per_identity, moving, "identity"),
        b("u-nir", ident, unproven, nir, s.limits_per_identity_unproven, moving, "identity"),
        b("u-namebirth", ident, unproven, nb, s.limits_per_identity_unproven, moving, "identity"),
        b("nirprefix", ident, any_, nir_prefix, s.limits_per_nir_prefix, moving, "identity"),
    )  # fmt: skip
    return table
