"""Where mail for a domain goes: MX and address lookups with dnspython's async resolver.

Contract:

* ``Resolver.mx_hosts(domain)`` returns the mail exchangers in the order to try
  them: lowest preference first, equal preferences shuffled (RFC 5321 5.1),
  at most ``max_mx_hosts``. No MX records (NODATA) gives the implicit MX, the
  domain itself. A null MX (``0 .``, RFC 7505) raises ``RouteError`` with a
  permanent ``556 5.1.10``; NXDOMAIN a permanent ``550 5.1.2``; SERVFAIL and
  timeouts a temporary ``451 4.4.3``.
* ``Resolver.addresses(host)`` returns the host's IPv6 and IPv4 addresses
  (interleaved, IPv6 first) or raises ``RouteError``; an IP literal is
  returned as is. CNAME chains are followed by the resolver.
* Answers and NXDOMAIN/NODATA are cached for ``min(record TTL, dns_cache_ttl)``;
  SERVFAIL and timeouts are never cached, so a passing failure never turns
  into a bounce.

``[delivery] dns_nameservers`` (``host`` or ``host:port``) replaces the system
resolver; this is how tests point delivery at a DNS server on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from postline.delivery import metrics, replies
from postline.delivery.trouble import dns_outcome, dns_reply
from postline.reply import ReplyError
from postline.values import HostPort

_CACHE_ENTRIES = 10_000


class RouteError(ReplyError):
    """No way to this destination now (or ever: see ``reply``)."""


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int


@dataclass(frozen=True)
class _Answer:
    records: tuple[str, ...]
    nxdomain: bool = False


def order_mx(records: Sequence[MxHost], rng: random.Random | None = None) -> list[MxHost]:
    """Sort by preference (lowest first), shuffling hosts of equal preference."""
    rng = rng or random.Random()
    keyed = [(host.preference, rng.random(), host) for host in records]
    return [host for _, _, host in sorted(keyed, key=lambda item: item[:2])]


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Resolver:
    """MX and address lookups with a small cache (module docstring)."""

    def __init__(
        self,
        nameservers: Sequence[HostPort],
        *,
        timeout: float,
        cache_ttl: float,
        max_mx_hosts: int,
    ) -> None:
        self._nameservers = list(nameservers)
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._max_mx = max_mx_hosts
        self._cache: OrderedDict[tuple[str, str], tuple[float, _Answer]] = OrderedDict()
        self._resolver: dns.asyncresolver.Resolver | None = None

    async def start(self) -> None:
        """Build the resolver (nameserver host names are looked up once, here)."""
        if not self._nameservers:
            self._resolver = await asyncio.to_thread(dns.asyncresolver.Resolver)
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            loop = asyncio.get_running_loop()
            servers: list[dns.nameserver.Nameserver] = []
            for server in self._nameservers:
                address = server.host
                if not is_ip(address):
                    infos = await loop.getaddrinfo(address, server.port)
                    address = str(infos[0][4][0])
                servers.append(dns.nameserver.Do53Nameserver(address, server.port))
            resolver.nameservers = servers
            self._resolver = resolver
        self._resolver.lifetime = self._timeout
        self._resolver.timeout = min(self._timeout, 5.0)
        self._resolver.cache = None

    async def mx_hosts(self, domain: str) -> list[MxHost]:
        answer = await self._lookup(domain, "MX")
        if answer.nxdomain:
            raise RouteError(replies.detailed(replies.DOMAIN_NOT_FOUND, domain))
        hosts: list[MxHost] = []
        null_mx = False
        for record in answer.records:
            preference, _, exchange = record.partition(" ")
            name = exchange.rstrip(".").lower()
            if not name:
                null_mx = True
                continue
            hosts.append(MxHost(name, int(preference)))
        if null_mx and not hosts:
            raise RouteError(replies.detailed(replies.NULL_MX, domain))
        if not hosts:
            return [MxHost(domain, 0)]  # implicit MX (RFC 5321 5.1)
        return order_mx(hosts)[: self._max_mx]

    async def addresses(self, host: str) -> list[str]:
        if is_ip(host):
            return [host]
        results = await asyncio.gather(
            self._lookup(host, "AAAA"), self._lookup(host, "A"), return_exceptions=True
        )
        found: list[list[str]] = []
        failures: list[RouteError] = []
        nxdomain = 0
        for result in results:
            if isinstance(result, RouteError):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                found.append(list(result.records))
                nxdomain += result.nxdomain
        addresses = _interleave(*found)
        if addresses:
            return addresses
        if failures:
            raise failures[0]
        if nxdomain == len(results):
            raise RouteError(replies.detailed(replies.DOMAIN_NOT_FOUND, host))
        raise RouteError(replies.detailed(replies.NO_ADDRESS, host))

    async def _lookup(self, name: str, rdtype: str) -> _Answer:
        key = (name.lower().rstrip("."), rdtype)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            metrics.DNS_LOOKUPS.labels(rdtype, "cached").inc()
            return cached[1]
        try:
            answer, ttl = await self._query(key[0], rdtype)
        except dns.exception.DNSException as error:
            metrics.DNS_LOOKUPS.labels(rdtype, dns_outcome(error)).inc()
            raise RouteError(dns_reply(error, key[0])) from None
        outcome = "nxdomain" if answer.nxdomain else "ok" if answer.records else "nodata"
        metrics.DNS_LOOKUPS.labels(rdtype, outcome).inc()
        self._remember(key, answer, ttl)
        return answer

    async def _query(self, name: str, rdtype: str) -> tuple[_Answer, float]:
        assert self._resolver is not None, "Resolver.start() was not called"
        qname = dns.name.from_text(name)
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return _Answer((), nxdomain=True), self._cache_ttl
        except dns.resolver.NoAnswer:
            return _Answer(()), self._cache_ttl
        rrset = answer.rrset
        records = tuple(rdata.to_text() for rdata in rrset) if rrset is not None else ()
        ttl = float(rrset.ttl) if rrset is not None else self._cache_ttl
        return _Answer(records), min(ttl, self._cache_ttl)

    def _remember(self, key: tuple[str, str], answer: _Answer, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + ttl, answer)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)


def _interleave(*lists: list[str]) -> list[str]:
    merged: list[str] = []
    for index in range(max((len(items) for items in lists), default=0)):
        merged.extend(items[index] for items in lists if index < len(items))
    return merged
