"""IP addresses as both ends of the relay judge them.

``unmapped`` turns an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a
dual-stack socket reports for an IPv4 peer) into the IPv4 address it carries,
so relay rights, limits and the private-destination guard judge the address a
person would write. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address; any other address as it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_ip(text: str | None) -> IPAddress | None:
    """``text`` as an address (a ``%zone`` suffix dropped, IPv4-mapped unwrapped); None if bad."""
    if not text:
        return None
    try:
        return unmapped(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None
