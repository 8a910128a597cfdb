"""Which network a request comes from, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(text: str) -> IPAddress | None:
    """Parse an address; IPv4-mapped IPv6 (``::ffff:1.2.3.4``) folds to IPv4."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(scope: Scope, trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The socket peer, or, when the peer is a trusted proxy, the right-most untrusted hop.

    Walking right to left matters: every hop left of the first untrusted one
    was written by the client itself and may be forged.
    """
    peer = scope.get("client")
    address = parse_ip(peer[0]) if peer else None
    if address is None or not _trusted(address, trusted_proxies):
        return address
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded.extend(value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        hop_address = parse_ip(hop)
        if hop_address is None:
            return address  # unparsable: stop at the last hop we can vouch for
        address = hop_address
        if not _trusted(address, trusted_proxies):
            return address
    return address


def network_of(address: IPAddress) -> str:
    """The unit one subscriber controls: an IPv4 address or an IPv6 /64."""
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def wide_network_of(address: IPAddress) -> str | None:
    """The IPv6 /48 a site usually gets (None for IPv4): a larger tier against /64 hopping."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    return str(ipaddress.IPv6Network((address, 48), strict=False))
