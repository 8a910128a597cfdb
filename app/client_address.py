"""Which network a request comes from, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: "198.51.100.7:51234" or "[2001:db8::1]:443": some proxies append the client's port.
_WITH_PORT = re.compile(r"^\[(?P<v6>[^\]]+)\](?::\d{1,5})?$|^(?P<v4>[0-9.]+):\d{1,5}$")


def parse_ip(text: str) -> IPAddress | None:
    """Parse an address (optionally with a port); IPv4-mapped IPv6 folds to IPv4.

    ``::ffff:1.2.3.4`` is how a dual-stack socket shows an IPv4 client: the same
    client must land in the same bucket whichever way it arrives. An IPv6 zone
    (``%eth0``) is dropped so it cannot split one address into several keys.
    """
    text = text.strip()
    if matched := _WITH_PORT.match(text):
        text = matched["v6"] or matched["v4"]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return ipaddress.IPv6Address(address.packed)
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(scope: Scope, trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The socket peer, or, when the peer is a trusted proxy, the right-most untrusted hop.

    Walking right to left matters: each trusted proxy appends the peer it saw, so
    every hop left of the first untrusted one was written by the client itself and
    may be forged. If a hop cannot be parsed, the walk stops at the last address a
    trusted proxy vouched for: such requests share that proxy's bucket (fail closed).
    """
    peer = scope.get("client")
    address = parse_ip(str(peer[0])) if peer else None
    if address is None or not _trusted(address, trusted_proxies):
        return address
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded.extend(value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        hop_address = parse_ip(hop)
        if hop_address is None:
            return address
        address = hop_address
        if not _trusted(address, trusted_proxies):
            return address
    return address
