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

* ``Resolver.records(name, rdtype)`` is any other lookup (``TXT`` for MTA-STS,
  ``TLSA`` for DANE), cached the same way; TXT records come back as their
  strings joined.
* With ``dnssec=True`` (``[delivery] dnssec_resolver``: the nameservers
  validate) queries ask for DNSSEC (EDNS DO, the AD flag) and every answer
  says whether the resolver vouched for it (``secure``: the AD bit). MX hosts
  carry the MX answer's ``secure``; ``secure_addresses`` the address answers'.
  Without it nothing is ever secure.

``[delivery] dns_nameservers`` (``host`` or ``host:port``) replaces the system
resolver; this is how tests point delivery at a DNS server on loopback. Names
reach dnspython as text; its codec is IDNA 2008 (UTS 46), the same as
``idn.to_ascii``.
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
import dns.flags
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
    secure: bool = False  # the MX answer was DNSSEC-validated (AD bit)


@dataclass(frozen=True)
class Records:
    """One lookup's records (as text), whether the name exists, whether it was validated."""

    records: tuple[str, ...]
    nxdomain: bool = False
    secure: bool = False


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
        dnssec: bool = False,
    ) -> None:
        self._nameservers = list(nameservers)
        self._dnssec = dnssec
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._max_mx = max_mx_hosts
        self._cache: OrderedDict[tuple[str, str], tuple[float, Records]] = OrderedDict()
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
        if self._dnssec:
            self._resolver.use_edns(0, dns.flags.DO, 1232)
            self._resolver.flags = dns.flags.RD | dns.flags.AD

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
            hosts.append(MxHost(name, int(preference), answer.secure))
        if null_mx and not hosts:
            raise RouteError(replies.detailed(replies.NULL_MX, domain))
        if not hosts:
            return [MxHost(domain, 0)]  # implicit MX (RFC 5321 5.1)
        return order_mx(hosts)[: self._max_mx]

    async def records(self, name: str, rdtype: str) -> Records:
        """Records of ``rdtype`` at ``name`` (``RouteError`` on SERVFAIL/timeouts)."""
        return await self._lookup(name, rdtype)

    async def addresses(self, host: str) -> list[str]:
        return (await self.secure_addresses(host))[0]

    async def secure_addresses(self, host: str) -> tuple[list[str], bool]:
        """The addresses of ``host`` and whether every answer that had some was validated."""
        if is_ip(host):
            return [host], True
        results = await asyncio.gather(
            self._lookup(host, "AAAA"), self._lookup(host, "A"), return_exceptions=True
        )
        found: list[list[str]] = []
        failures: list[RouteError] = []
        nxdomain = 0
        secure = True
        for result in results:
            if isinstance(result, RouteError):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                found.append(list(result.records))
                nxdomain += result.nxdomain
                secure = secure and (result.secure or not result.records)
        addresses = _interleave(*found)
        if addresses:
            return addresses, secure and not failures
        if failures:
            raise failures[0]
        if nxdomain == len(results):
            raise RouteError(replies.detailed(replies.DOMAIN_NOT_FOUND, host))
        raise RouteError(replies.detailed(replies.NO_ADDRESS, host))

    async def _lookup(self, name: str, rdtype: str) -> Records:
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

    async def _query(self, name: str, rdtype: str) -> tuple[Records, float]:
        assert self._resolver is not None, "Resolver.start() was not called"
        qname = dns.name.from_text(name)
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Records((), nxdomain=True), self._cache_ttl
        except dns.resolver.NoAnswer:
            return Records(()), self._cache_ttl
        rrset = answer.rrset
        records = tuple(_text(rdata) for rdata in rrset) if rrset is not None else ()
        ttl = float(rrset.ttl) if rrset is not None else self._cache_ttl
        secure = self._dnssec and bool(answer.response.flags & dns.flags.AD)
        return Records(records, secure=secure), min(ttl, self._cache_ttl)

    def _remember(self, key: tuple[str, str], answer: Records, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + ttl, answer)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)


def _text(rdata: object) -> str:
    """A record as text; a TXT record as its strings joined (RFC 7208 3.3, RFC 8461 3.1)."""
    strings = getattr(rdata, "strings", None)
    if isinstance(strings, tuple):
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata)


def _interleave(*lists: list[str]) -> list[str]:
    merged: list[str] = []
    for index in range(max((len(items) for items in lists), default=0)):
        merged.extend(items[index] for items in lists if index < len(items))
    return merged
