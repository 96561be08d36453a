"""DNS: each resolver delivery uses answers.

The resolvers are ``[delivery] dns_nameservers`` (``host`` or ``host:port``),
or the system's (``/etc/resolv.conf``) when that list is empty. Each one is
asked ``. NS`` over UDP within ``TIMEOUT`` s: any answer that is not
``SERVFAIL`` or ``REFUSED`` (NXDOMAIN included: an authoritative test server
knows no root) shows that it works; a timeout or a refusal is a ``FAIL``.
"""

from __future__ import annotations

import asyncio
import time

import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.rcode
import dns.resolver

from postline.app.doctor.report import Check, escape, failed, passed
from postline.delivery.settings import DeliverySettings
from postline.values import HostPort

TIMEOUT = 3.0
_BAD = {dns.rcode.SERVFAIL, dns.rcode.REFUSED}


def resolvers_of(settings: DeliverySettings) -> tuple[list[HostPort], str]:
    """The resolvers delivery uses, and where that list comes from."""
    if settings.dns_nameservers:
        return list(settings.dns_nameservers), "[delivery] dns_nameservers"
    try:
        system = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return [], "the system resolver"
    return [HostPort(str(s), system.port) for s in system.nameservers], "/etc/resolv.conf"


async def dns_checks(settings: DeliverySettings) -> list[Check]:
    servers, source = resolvers_of(settings)
    if not servers:
        found = f"no nameserver configured ({source})"
        return [failed("dns", found, "set [delivery] dns_nameservers or fix /etc/resolv.conf")]
    return [await _ask(server, source) for server in servers]


async def _ask(server: HostPort, source: str) -> Check:
    name = f"dns {server}"
    advice = f"make the resolver answer, or point [delivery] dns_nameservers elsewhere ({source})"
    start = time.monotonic()
    try:
        address = await _address_of(server.host)
        query = dns.message.make_query(".", "NS")
        answer = await dns.asyncquery.udp(query, address, TIMEOUT, port=server.port)
    except dns.exception.Timeout:
        return failed(name, f"no answer within {TIMEOUT:g}s", advice)
    except (OSError, dns.exception.DNSException) as error:
        return failed(name, f"cannot ask it: {escape(error)}", advice)
    elapsed = (time.monotonic() - start) * 1000
    rcode = dns.rcode.to_text(answer.rcode())
    if answer.rcode() in _BAD:
        return failed(name, f"answered {rcode}", advice)
    return passed(name, f"answered ({rcode}) in {elapsed:.0f} ms; from {source}")


async def _address_of(host: str) -> str:
    try:
        dns.inet.af_for_address(host)
        return host
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 53)
        return str(infos[0][4][0])
