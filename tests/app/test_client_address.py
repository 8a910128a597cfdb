from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from app.client_address import client_ip, parse_ip

PROXY = ipaddress.ip_network("10.0.0.0/8")
LB = ipaddress.ip_network("192.0.2.10/32")


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode("latin-1")) for value in forwarded]
    return {"client": (peer, 50000) if peer is not None else None, "headers": headers}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("198.51.100.7:51234", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("[::ffff:198.51.100.7]:443", "198.51.100.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:8443", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ],
)
def test_parse_ip_normalises_every_spelling_of_one_address(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


@pytest.mark.parametrize("text", ["", "unknown", "_hidden", "198.51.100", "1.2.3.4:x", "[::1"])
def test_parse_ip_refuses_what_is_not_an_address(text: str) -> None:
    assert parse_ip(text) is None


def test_the_socket_peer_is_used_when_no_proxy_is_trusted() -> None:
    spoofed = scope("203.0.113.5", "198.51.100.1, 198.51.100.2")
    assert str(client_ip(spoofed, [])) == "203.0.113.5"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    spoofed = scope("203.0.113.5", "10.1.1.1")
    assert str(client_ip(spoofed, [PROXY])) == "203.0.113.5"


def test_a_trusted_proxy_yields_the_right_most_untrusted_hop() -> None:
    # The client wrote "198.51.100.1, 198.51.100.2"; the proxy appended what it saw.
    forged = scope("10.0.0.2", "198.51.100.1, 198.51.100.2, 203.0.113.9")
    assert str(client_ip(forged, [PROXY])) == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_right_to_left() -> None:
    chain = scope("192.0.2.10", "198.51.100.1, 203.0.113.9", "10.4.5.6")
    assert str(client_ip(chain, [PROXY, LB])) == "203.0.113.9"


def test_a_trusted_proxy_without_forwarded_for_is_the_client() -> None:
    assert str(client_ip(scope("10.0.0.2"), [PROXY])) == "10.0.0.2"


def test_an_unparsable_hop_stops_the_walk_at_the_last_vouched_address() -> None:
    garbled = scope("192.0.2.10", "203.0.113.9, garbage", "10.4.5.6")
    assert str(client_ip(garbled, [PROXY, LB])) == "10.4.5.6"


def test_ipv4_mapped_peers_fold_to_ipv4_and_match_ipv4_proxies() -> None:
    assert str(client_ip(scope("::ffff:10.0.0.2", "203.0.113.9"), [PROXY])) == "203.0.113.9"
    assert str(client_ip(scope("::ffff:198.51.100.7"), [])) == "198.51.100.7"


def test_an_ipv6_client_behind_a_trusted_proxy() -> None:
    forwarded = scope("10.0.0.2", "[2001:db8:1:2::77]:5555")
    assert str(client_ip(forwarded, [PROXY])) == "2001:db8:1:2::77"


def test_no_peer_means_no_address() -> None:
    assert client_ip(scope(None, "203.0.113.9"), [PROXY]) is None


def test_a_forwarded_for_list_without_spaces_is_split_on_commas() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    scope = {
        "client": ("10.0.0.2", 1),
        "headers": [(b"x-forwarded-for", b"203.0.113.9,10.0.0.1")],
    }
    assert client_ip(scope, proxies) == ipaddress.ip_address("203.0.113.9")
