"""The TLS report table: RFC 8460 result types only, per domain and policy, bounded."""

from __future__ import annotations

import pytest

from postline.delivery.tlsrpt import TlsReports


def test_outcomes_are_counted_per_domain_and_policy() -> None:
    reports = TlsReports()
    reports.success("x.test", "sts")
    reports.failure("x.test", "sts", "validation-failure", "mx.other.test", "not allowed")
    reports.failure("x.test", "tlsa", "certificate-not-trusted")
    sts = reports.summary("x.test", "sts")
    assert (sts.successes, dict(sts.failures)) == (1, {"validation-failure": 1})
    assert sts.recent[0][1:] == ("validation-failure", "mx.other.test", "not allowed")
    assert reports.summary("x.test", "tlsa").failure_count == 1
    assert reports.summary("y.test", "sts").successes == 0


def test_only_rfc_8460_result_types_are_recorded() -> None:
    with pytest.raises(ValueError):
        TlsReports().failure("x.test", "sts", "something-else")


def test_the_table_keeps_the_most_recent_domains() -> None:
    reports = TlsReports(max_domains=2)
    for domain in ("a.test", "b.test", "c.test"):
        reports.success(domain, "sts")
    assert reports.summary("a.test", "sts").successes == 0
    assert reports.summary("c.test", "sts").successes == 1
