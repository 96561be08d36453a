"""MTA-STS (RFC 8461): the policy of a recipient domain, fetched over HTTPS and cached.

``MtaSts.lookup(domain)`` returns an ``StsLookup``: the policy to apply (None
when the domain has none, or its mode is ``none``) and what happened. Per RFC
8461 5.1:

1. the TXT record ``_mta-sts.<domain>`` (``v=STSv1; id=...``) is looked up
   through delivery's resolver (so tests' DNS server answers it). No valid
   record, or a DNS failure: the cached policy, if one has not expired, else
   none;
2. a cached policy with the record's ``id`` is used as it is;
3. otherwise the policy is fetched from
   ``https://mta-sts.<domain>/.well-known/mta-sts.txt``: the certificate is
   verified (the system store, or ``mta_sts_ca_file``) for that name, no
   redirects are followed, the reply must be ``200`` ``text/plain`` of at most
   ``MAX_POLICY_BYTES`` within ``mta_sts_timeout``; the host name is resolved
   through the same resolver and ``deny_private_destinations`` applies to its
   addresses. A fetched policy is cached for its ``max_age``. A fetch that
   fails keeps the cached policy (the RFC's rule: an attacker who blocks the
   refresh must not remove the policy) and is recorded as an RFC 8460 failure
   (``sts-webpki-invalid``, ``sts-policy-fetch-error``, ``sts-policy-invalid``);
   the same policy id is not fetched again for ``FAILED_FETCH_PAUSE``.

``StsPolicy.allows(host)`` is the MX pattern match of RFC 8461 4.1 (``*.``
matches exactly one leftmost label), on A-labels. Applying the policy
(``enforce``: only allowed MX hosts, over verified TLS; ``testing``: as usual,
failures recorded) is ``security``'s job. Concurrent lookups of one domain
share one fetch.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from postline.delivery import metrics
from postline.delivery.idn import IdnaError, to_ascii
from postline.delivery.mx import Resolver, RouteError
from postline.delivery.replies import escaped
from postline.delivery.route import DestinationGuard
from postline.delivery.tlsrpt import TlsReports

MAX_POLICY_BYTES = 64 * 1024
MAX_AGE = 31_557_600  # RFC 8461 3.2: at most a year
FAILED_FETCH_PAUSE = 300.0
_CACHE_ENTRIES = 10_000
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
Mode = Literal["enforce", "testing", "none"]
_MODES: dict[str, Mode] = {"enforce": "enforce", "testing": "testing", "none": "none"}


class PolicyInvalid(ValueError):
    """The policy text is not an RFC 8461 policy."""


@dataclass(frozen=True)
class StsPolicy:
    """One domain's policy: its id, mode, MX patterns (A-labels) and lifetime."""

    id: str
    mode: Mode
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        try:
            name = to_ascii(host)
        except IdnaError:
            return False
        for pattern in self.mx:
            if pattern.startswith("*."):
                first, _, rest = name.partition(".")
                if first and rest == pattern[2:]:
                    return True
            elif name == pattern:
                return True
        return False


def policy_id(records: Sequence[str]) -> str | None:
    """The ``id`` of the one ``v=STSv1`` TXT record, or None (RFC 8461 3.1)."""
    candidates = [r for r in records if r.startswith("v=STSv1")]
    if len(candidates) != 1:
        return None
    fields = dict(
        (k.strip(), v.strip())
        for k, _, v in (f.partition("=") for f in candidates[0].split(";") if f.strip())
    )
    found = fields.get("id", "")
    return found if fields.get("v") == "STSv1" and _ID.match(found) else None


def parse_policy(text: str, policy: str) -> StsPolicy:
    """The policy in ``text`` (``key: value`` lines), with the TXT record's id ``policy``."""
    fields: dict[str, str] = {}
    patterns: list[str] = []
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or not key:
            continue
        if key == "mx":
            patterns.append(_pattern(value))
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyInvalid("version is not STSv1")
    mode = _MODES.get(fields.get("mode", ""))
    if mode is None:
        shown = escaped(fields.get("mode", ""))
        raise PolicyInvalid(f"mode {shown!r} is not enforce, testing or none")
    age = fields.get("max_age", "")
    if not age.isdigit() or len(age) > 10:
        raise PolicyInvalid("max_age is not a number of seconds")
    if mode != "none" and not patterns:
        raise PolicyInvalid("no mx pattern")
    return StsPolicy(policy, mode, tuple(patterns), min(int(age), MAX_AGE))


def _pattern(value: str) -> str:
    wildcard = value.startswith("*.")
    try:
        name = to_ascii(value[2:] if wildcard else value)
    except IdnaError:
        raise PolicyInvalid(f"mx {escaped(value)!r} is not a host name") from None
    if not name or "*" in name:
        raise PolicyInvalid(f"mx {escaped(value)!r} is not a host name")
    return f"*.{name}" if wildcard else name


@dataclass(frozen=True)
class StsLookup:
    """The policy to apply (None: none), a failed fetch's RFC 8460 result, a transcript note."""

    policy: StsPolicy | None
    note: str = ""
    failure: str | None = None


class FetchFailed(Exception):
    def __init__(self, result: str, why: str) -> None:
        super().__init__(why)
        self.result = result


class MtaSts:
    """Policy lookups, fetches and the cache (module docstring)."""

    def __init__(
        self,
        resolver: Resolver,
        guard: DestinationGuard,
        reports: TlsReports,
        *,
        port: int = 443,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._resolver = resolver
        self._guard = guard
        self._reports = reports
        self._port = port
        self._ca_file = ca_file
        self._timeout = timeout
        self._cache: OrderedDict[str, tuple[float, StsPolicy]] = OrderedDict()
        self._failed: dict[tuple[str, str], float] = {}
        self._fetching: dict[tuple[str, str], asyncio.Future[StsPolicy]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        context = await asyncio.to_thread(ssl.create_default_context, cafile=self._ca_file)
        connector = aiohttp.TCPConnector(
            resolver=_PolicyHosts(self._resolver, self._guard), ssl=context, use_dns_cache=False
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            trust_env=False,
            headers={"User-Agent": "Postline MTA-STS"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def lookup(self, domain: str) -> StsLookup:
        cached = self._cached(domain)
        try:
            found = policy_id((await self._resolver.records(f"_mta-sts.{domain}", "TXT")).records)
        except RouteError:
            found = None
        if found is None or (cached is not None and cached.id == found):
            return StsLookup(cached, "cached" if cached else "")
        if time.monotonic() < self._failed.get((domain, found), 0.0):
            return StsLookup(cached, _kept(cached, "the last fetch failed"))
        try:
            policy = await self._shared_fetch(domain, found)
        except FetchFailed as failure:
            self._failed[(domain, found)] = time.monotonic() + FAILED_FETCH_PAUSE
            self._reports.failure(domain, "sts", failure.result, detail=str(failure))
            return StsLookup(cached, _kept(cached, f"fetch failed: {failure}"), failure.result)
        return StsLookup(policy, "fetched")

    def _cached(self, domain: str) -> StsPolicy | None:
        entry = self._cache.get(domain)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def _shared_fetch(self, domain: str, found: str) -> StsPolicy:
        key = (domain, found)
        running = self._fetching.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[StsPolicy] = asyncio.ensure_future(self._fetch(domain, found))
        self._fetching[key] = future
        try:
            policy = await asyncio.shield(future)
        finally:
            self._fetching.pop(key, None)
        self._cache[domain] = (time.monotonic() + policy.max_age, policy)
        self._cache.move_to_end(domain)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return policy

    async def _fetch(self, domain: str, found: str) -> StsPolicy:
        assert self._session is not None, "MtaSts.start() was not called"
        port = "" if self._port == 443 else f":{self._port}"
        url = f"https://mta-sts.{domain}{port}/.well-known/mta-sts.txt"
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                text = await _policy_text(response)
        except (aiohttp.ClientSSLError, ssl.SSLError) as error:
            metrics.MTA_STS_FETCHES.labels("failed").inc()
            raise FetchFailed("sts-webpki-invalid", _why(error)) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            metrics.MTA_STS_FETCHES.labels("failed").inc()
            raise FetchFailed("sts-policy-fetch-error", _why(error)) from None
        try:
            policy = parse_policy(text, found)
        except PolicyInvalid as error:
            metrics.MTA_STS_FETCHES.labels("invalid").inc()
            raise FetchFailed("sts-policy-invalid", str(error)) from None
        metrics.MTA_STS_FETCHES.labels("ok").inc()
        return policy


async def _policy_text(response: aiohttp.ClientResponse) -> str:
    if response.status != 200:
        raise aiohttp.ClientResponseError(
            response.request_info, (), status=response.status, message="not 200"
        )
    if response.content_type != "text/plain":
        raise aiohttp.ClientPayloadError(f"content type {escaped(response.content_type)}")
    data = b""
    while chunk := await response.content.read(MAX_POLICY_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > MAX_POLICY_BYTES:
            raise aiohttp.ClientPayloadError(f"policy larger than {MAX_POLICY_BYTES} bytes")
    return data.decode("utf-8", "replace")


def _kept(cached: StsPolicy | None, why: str) -> str:
    return f"cached policy kept: {why}" if cached else f"no policy: {why}"


def _why(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientResponseError):
        return f"HTTP {error.status}"
    if isinstance(error, TimeoutError):
        return "timed out"
    return escaped(str(error) or type(error).__name__)


class _PolicyHosts(AbstractResolver):
    """aiohttp's resolver: delivery's DNS, and the destination guard on the addresses."""

    def __init__(self, resolver: Resolver, guard: DestinationGuard) -> None:
        self._resolver = resolver
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._resolver.addresses(host)
        except RouteError as error:
            raise OSError(f"{host}: {error.reply}") from None
        results: list[ResolveResult] = []
        for address in addresses:
            kind = socket.AF_INET6 if ":" in address else socket.AF_INET
            if self._guard.refusal(address) is None and family in (socket.AF_UNSPEC, kind):
                numeric = socket.AI_NUMERICHOST
                result = ResolveResult(
                    hostname=host, host=address, port=port, family=kind, proto=0, flags=numeric
                )
                results.append(result)
        if not results:
            raise OSError(f"{host}: no usable address")
        return results

    async def close(self) -> None:
        return None
