"""TLS outcomes per recipient domain, in RFC 8460 (SMTP TLS Reporting) terms.

Every outbound TLS decision made under a policy is recorded here once:
``TlsReports.success(domain, policy)`` for a session whose TLS satisfied the
policy, ``failure(domain, policy, result, mx, detail)`` for one that did not
(or an MX the policy excluded). ``policy`` is RFC 8460's policy type:
``sts`` (MTA-STS), ``tlsa`` (DANE) or ``no-policy-found``; ``result`` is one of
its result types (``RESULT_TYPES``), so the table could feed a TLS-RPT report
and the metric ``postline_delivery_tls_policy_results_total{policy, result}``
(``result`` is ``success`` or a result type) has a fixed, small label set.

The table is in memory and bounded (``MAX_DOMAINS``, least recently used
dropped first): a summary for operators and tests (``summary(domain)``), not
an archive. Sending TLS-RPT reports is not done (optional in the RFC). Names
from DNS or a remote are kept as data here and escaped where they are shown.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from postline.delivery import metrics

PolicyType = Literal["sts", "tlsa", "no-policy-found"]
RESULT_TYPES = frozenset(
    {
        # negotiation failures (RFC 8460 4.3.1)
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        # policy failures (4.3.2)
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
MAX_DOMAINS = 10_000
_DETAILS_KEPT = 20


@dataclass
class DomainReport:
    """What happened under one policy of one domain since this process started."""

    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # result type -> sessions
    recent: list[tuple[float, str, str, str]] = field(default_factory=list)  # (when, type, mx, why)

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())


class TlsReports:
    """The bounded per-domain table (module docstring)."""

    def __init__(self, max_domains: int = MAX_DOMAINS) -> None:
        self._max = max_domains
        self._table: OrderedDict[tuple[str, str], DomainReport] = OrderedDict()

    def success(self, domain: str, policy: PolicyType) -> None:
        self._entry(domain, policy).successes += 1
        metrics.TLS_POLICY_RESULTS.labels(policy, "success").inc()

    def failure(
        self, domain: str, policy: PolicyType, result: str, mx: str = "", detail: str = ""
    ) -> None:
        if result not in RESULT_TYPES:
            raise ValueError(f"not an RFC 8460 result type: {result}")
        entry = self._entry(domain, policy)
        entry.failures[result] += 1
        entry.recent.append((time.time(), result, mx, detail))
        del entry.recent[:-_DETAILS_KEPT]
        metrics.TLS_POLICY_RESULTS.labels(policy, result).inc()

    def summary(self, domain: str, policy: PolicyType) -> DomainReport:
        """A copy of what is known for ``domain`` under ``policy`` (empty if nothing)."""
        entry = self._table.get((domain, policy), DomainReport())
        return DomainReport(entry.successes, Counter(entry.failures), list(entry.recent))

    def _entry(self, domain: str, policy: str) -> DomainReport:
        key = (domain, policy)
        entry = self._table.get(key)
        if entry is None:
            entry = self._table[key] = DomainReport()
            while len(self._table) > self._max:
                self._table.popitem(last=False)
        self._table.move_to_end(key)
        return entry
