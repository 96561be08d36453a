"""Where one recipient domain's mail goes, and which addresses we refuse to go to.

``route_for(domain, settings)`` picks the next hop, strongest first:

1. ``[delivery] routes`` for the domain (Postfix ``transport_maps``);
2. ``[delivery] smarthost`` (Postfix ``relayhost``);
3. the domain's own MX records on ``smtp_port`` (an address literal such as
   ``user@[192.0.2.1]`` goes straight to that address).

A hop spelled ``[host]:port`` is used as is (no MX lookup); ``host:port`` means
"the MX records of host". Operator-chosen hops (routes, smarthost) are exempt
from ``deny_private_destinations``; the smarthost alone uses the smarthost
credentials.

``DestinationGuard`` says why an address must not be connected to: loopback,
link-local, RFC 1918 and every other non-global range, and the broker's own
addresses, while ``deny_private_destinations`` is on (the default). This keeps
a hostile MX record from turning the relay into a probe of the inside network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from postline.delivery.idn import IdnaError, to_ascii
from postline.delivery.settings import DeliverySettings
from postline.netaddr import parse_ip
from postline.values import NextHop


@dataclass(frozen=True)
class Route:
    """How to reach one destination."""

    nexthop: str  # the destination key: recipient domain, or the hop as configured
    host: str  # domain/host whose MX records to use, or the host to connect to
    port: int
    lookup_mx: bool
    operator_chosen: bool
    smarthost: bool = False


def route_for(domain: str, settings: DeliverySettings) -> Route:
    """The route for recipient ``domain`` (lower case, no trailing dot)."""
    hop = settings.routes.get(domain)
    if hop is not None:
        return _hop_route(hop, smarthost=False)
    if settings.smarthost is not None:
        return _hop_route(settings.smarthost, smarthost=True)
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        literal = literal[5:] if literal.lower().startswith("ipv6:") else literal
        return Route(domain, literal, settings.smtp_port, lookup_mx=False, operator_chosen=False)
    return Route(domain, domain, settings.smtp_port, lookup_mx=True, operator_chosen=False)


def _hop_route(hop: NextHop, smarthost: bool) -> Route:
    return Route(
        str(hop),
        hop.host.lower(),
        hop.port,
        lookup_mx=hop.mx_lookup,
        operator_chosen=True,
        smarthost=smarthost,
    )


class DestinationGuard:
    """Refuses private and broker addresses while ``enabled`` (module docstring)."""

    def __init__(self, enabled: bool, broker_addresses: set[str] | None = None) -> None:
        self.enabled = enabled
        self._broker = {_normalise(a) for a in broker_addresses or set()}

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or None when it may be used."""
        if not self.enabled:
            return None
        ip = parse_ip(address)
        if ip is None:
            return f"{address} is not an IP address"
        if str(ip) in self._broker:
            return f"{ip} is the message broker"
        if not ip.is_global:
            kind = "loopback" if ip.is_loopback else "link-local" if ip.is_link_local else None
            kind = kind or ("private" if ip.is_private else "non-global")
            return f"{ip} is a {kind} address"
        return None


def _normalise(address: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(address))
    return address


async def broker_addresses(urls: Sequence[str]) -> set[str]:
    """The IP addresses of every broker node in ``urls`` (those that resolve)."""
    found: set[str] = set()
    for url in urls:
        host = urlsplit(url).hostname
        if not host:
            continue
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            continue
        found |= {str(info[4][0]) for info in infos}
    return found


def domain_of(address: str) -> str | None:
    """The domain of ``address`` in A-labels, lower case (``None`` if it has no usable one).

    Splits at the last ``@`` (a quoted local part may contain ``@``); refuses
    control characters, which no SMTP command may carry, and domains that are
    not valid IDNA 2008 (``idn.to_ascii``): ``straße.test`` and
    ``xn--strae-oqa.test`` are the same destination, for routes, DNS and
    policies alike.
    """
    if any(ord(char) < 32 or ord(char) == 127 for char in address):
        return None
    local, at, domain = address.rpartition("@")
    domain = domain.strip().rstrip(".")
    if not at or not local or not domain or " " in domain:
        return None
    try:
        return to_ascii(domain)
    except IdnaError:
        return None
