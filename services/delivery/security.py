"""Transport security per MX host: DANE, then MTA-STS, then the configured ``tls_policy``.

``Security.domain_policy(domain, route)`` looks up the recipient domain's
MTA-STS policy (``mtasts``) when ``[delivery] mta_sts`` is on and the mail goes
to the domain's own MX hosts (not to a route or the smarthost, which the
operator chose). ``Security.for_host(...)`` then decides how one host is
talked to, strongest first:

1. **DANE** (RFC 7672), with ``dane`` and ``dnssec_resolver`` on, for a host
   name (not an address) whose MX answer (when MX records were used) and
   address answers were DNSSEC-validated: a validated TLSA RRset at
   ``_<port>._tcp.<host>`` makes TLS mandatory and the certificate must match
   one usable record (``dane.verify``); only unusable records: TLS mandatory,
   unauthenticated, and a ``tlsa-invalid`` report. A failed TLSA lookup
   (SERVFAIL, timeout) makes the host unusable (``451 4.7.5``), never a
   downgrade. DANE wins over MTA-STS for that host (RFC 8461 2).
2. **MTA-STS** (RFC 8461). ``enforce``: a host the policy's ``mx`` patterns do
   not allow is skipped (``451 4.7.5``, ``validation-failure``); an allowed one
   needs TLS with a certificate valid for its name (``verify``). ``testing``:
   the same checks, but a failure is only recorded and the host is used as the
   domain's own policy says (a failed verification is tried again on a new
   session under that policy).
3. Otherwise ``tls_domain_policies`` / ``tls_policy``.

The answer is a ``HostSecurity`` (the fields ``connection.Target`` carries),
or an ``SmtpReply`` that skips the host. Policy failures are recorded per
domain (``tlsrpt``); TLS outcomes of sessions are recorded by ``sender``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from postline.delivery import replies
from postline.delivery.dane import Tlsa, tlsa_name
from postline.delivery.mtasts import MtaSts, StsLookup
from postline.delivery.mx import MxHost, Resolver, RouteError, is_ip
from postline.delivery.route import Route
from postline.delivery.settings import DeliverySettings, TlsPolicy
from postline.delivery.tlsrpt import PolicyType, TlsReports
from postline.reply import SmtpReply


@dataclass(frozen=True)
class HostSecurity:
    """How TLS is done with one host (see ``connection.Target``)."""

    tls_policy: TlsPolicy
    tlsa: tuple[Tlsa, ...] = ()
    sts: Literal["enforce", "testing"] | None = None
    tls_fallback: TlsPolicy | None = None
    policy_type: PolicyType = "no-policy-found"
    note: str = ""


class Security:
    """Transport security decisions for one delivery service (module docstring)."""

    def __init__(
        self,
        settings: DeliverySettings,
        resolver: Resolver,
        reports: TlsReports,
        mta_sts: MtaSts | None,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._reports = reports
        self._mta_sts = mta_sts
        self._dane = settings.dane and settings.dnssec_resolver

    async def domain_policy(self, domain: str, route: Route) -> StsLookup | None:
        if self._mta_sts is None or not route.lookup_mx or route.operator_chosen:
            return None
        return await self._mta_sts.lookup(domain)

    async def for_host(
        self,
        domain: str,
        route: Route,
        host: MxHost,
        sts: StsLookup | None,
        addresses_secure: bool,
    ) -> HostSecurity | SmtpReply:
        """How to talk to ``host`` (module docstring), or the reply that skips it."""
        base = self._settings.tls_domain_policies.get(domain, self._settings.tls_policy)
        mx_secure = host.secure or not route.lookup_mx
        if self._dane and mx_secure and addresses_secure and not is_ip(host.name):
            dane = await self._dane_for(domain, host.name, route.port)
            if dane is not None:
                return dane
        policy = sts.policy if sts is not None else None
        if policy is None or policy.mode == "none":
            return HostSecurity(base, note=_no_policy_note(sts))
        where = f"MTA-STS {policy.mode} (policy {policy.id}, {sts.note if sts else ''})"
        if not policy.allows(host.name):
            why = f"{host.name} is not an MX host the policy of {domain} allows"
            self._reports.failure(domain, "sts", "validation-failure", host.name, why)
            if policy.mode == "enforce":
                return replies.detailed(replies.MTA_STS_MX_MISMATCH, why)
            return HostSecurity(base, note=f"TLS policy: {where}: {why}; delivering as usual")
        if policy.mode == "enforce":
            note = f"TLS policy: {where}: verified TLS required"
            return HostSecurity("verify", sts="enforce", policy_type="sts", note=note)
        fallback: TlsPolicy | None = None if base == "verify" else base
        note = f"TLS policy: {where}: certificate checked, failures only recorded"
        return HostSecurity(
            "verify", sts="testing", tls_fallback=fallback, policy_type="sts", note=note
        )

    async def _dane_for(self, domain: str, host: str, port: int) -> HostSecurity | SmtpReply | None:
        name = tlsa_name(host, port)
        try:
            answer = await self._resolver.records(name, "TLSA")
        except RouteError as error:
            return replies.detailed(replies.DANE_LOOKUP, f"{name}: {error.reply}")
        if not answer.records or not answer.secure:
            return None  # no TLSA records (or not validated): DANE does not apply
        records = tuple(r for r in map(Tlsa.parse, answer.records) if r is not None)
        usable = tuple(r for r in records if r.usable)
        if not usable:
            self._reports.failure(domain, "tlsa", "tlsa-invalid", host, "no usable TLSA record")
            note = f"TLS policy: DANE: no usable TLSA record at {name}: TLS required, unverified"
            return HostSecurity("required", policy_type="tlsa", note=note)
        note = f"TLS policy: DANE: {len(usable)} usable TLSA record(s) at {name}"
        return HostSecurity("required", tlsa=usable, policy_type="tlsa", note=note)


def _no_policy_note(sts: StsLookup | None) -> str:
    if sts is None or not sts.note:
        return ""
    if sts.policy is not None:  # mode none
        return f"TLS policy: MTA-STS none (policy {sts.policy.id})"
    return f"TLS policy: MTA-STS: {sts.note}"
