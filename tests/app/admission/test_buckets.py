"""The network key functions the buckets count under: which addresses share a budget.

An IPv4 address or an IPv6 /64 is what one subscriber controls; an IPv4 /24 or an IPv6 /48
is what one site holds. Two addresses share a bucket exactly when they share that prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.admission.buckets import (
    Subject,
    bucket_table,
    name_and_birth,
    nir,
    nir_prefix,
    site,
    subscriber,
)
from app.settings import Settings

ipv6_hosts = st.integers(min_value=0, max_value=2**64 - 1)
prefixes = st.integers(min_value=0, max_value=2**64 - 1)
ipv4s = st.integers(min_value=0, max_value=2**32 - 1)


def at(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Subject:
    return Subject(address)


@given(prefixes, ipv6_hosts, ipv6_hosts)
def test_every_address_of_one_ipv6_64_is_one_subscriber(prefix: int, a: int, b: int) -> None:
    first = ipaddress.IPv6Address((prefix << 64) | a)
    second = ipaddress.IPv6Address((prefix << 64) | b)
    assert subscriber(at(first)) == subscriber(at(second))
    assert site(at(first)) == site(at(second))


@given(prefixes, prefixes, ipv6_hosts)
def test_different_64s_are_different_subscribers_and_48s_different_sites(
    p: int, q: int, host: int
) -> None:
    first = ipaddress.IPv6Address((p << 64) | host)
    second = ipaddress.IPv6Address((q << 64) | host)
    assert (subscriber(at(first)) == subscriber(at(second))) == (p == q)
    assert (site(at(first)) == site(at(second))) == (p >> 16 == q >> 16)


@given(ipv4s, ipv4s)
def test_each_ipv4_address_is_its_own_subscriber_and_its_24_a_site(a: int, b: int) -> None:
    first, second = ipaddress.IPv4Address(a), ipaddress.IPv4Address(b)
    assert (subscriber(at(first)) == subscriber(at(second))) == (a == b)
    assert (site(at(first)) == site(at(second))) == (a >> 8 == b >> 8)


def test_the_two_ends_of_one_prefix_share_it_and_its_neighbours_do_not() -> None:
    low, high = (
        ipaddress.ip_address("2001:db8::"),
        ipaddress.ip_address("2001:db8::ffff:ffff:ffff:ffff"),
    )
    assert subscriber(at(low)) == subscriber(at(high)) == "6/64:2001:db8::/64"
    assert site(at(low)) == site(at(high)) == "6/48:2001:db8::/48"
    assert subscriber(at(ipaddress.ip_address("2001:db8:0:1::"))) != subscriber(at(low))
    assert site(at(ipaddress.ip_address("2001:db8:1::"))) != site(at(low))
    v4 = ipaddress.ip_address("203.0.113.0"), ipaddress.ip_address("203.0.113.255")
    assert site(at(v4[0])) == site(at(v4[1])) == "4/24:203.0.113.0/24"
    assert site(at(ipaddress.ip_address("203.0.114.0"))) != site(at(v4[0]))
    assert subscriber(at(v4[0])) == "4/32:203.0.113.0/32"


def test_no_address_is_one_shared_unknown_bucket() -> None:
    """A request without a peer address (a misconfigured proxy) is never unlimited."""
    assert subscriber(Subject(None)) == "4/32:unknown"
    assert site(Subject(None)) == "4/24:unknown"


def test_the_bucket_names_are_the_ones_operators_alert_on(
    make_settings: Callable[..., Settings],
) -> None:
    """A bucket's name is the ``bucket`` label of selfcheck_refusals_total and the log's
    ``refused_by``: dashboards and alerts use the names docs/OPERATIONS.md lists."""
    operations = (Path(__file__).parents[3] / "docs" / "OPERATIONS.md").read_text()
    (line,) = [row for row in operations.splitlines() if "`selfcheck_refusals_total{" in row]
    documented = set(re.findall(r"`([a-z0-9-]+)`", line.split("(", 1)[1].split(";")[0]))
    issued_by_slowapi = {"challenge"}  # GET /v1/challenge's limit, not a table row
    assert {b.name for b in bucket_table(make_settings())} == documented - issued_by_slowapi


def test_identity_keys_do_not_apply_to_a_subject_without_an_identity() -> None:
    """None is a key function's "this bucket does not apply": a request not yet validated
    has no identity, so it must never count under some half-made identity key."""
    bare = Subject(ipaddress.ip_address("192.0.2.1"))
    assert (nir(bare), name_and_birth(bare), nir_prefix(bare)) == (None, None, None)
