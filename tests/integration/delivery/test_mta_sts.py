"""MTA-STS (RFC 8461): enforce, testing, and a policy host that fails, with and without a cache.

The recipient domain ``x.test`` publishes ``_mta-sts.x.test TXT "v=STSv1; id=1"``; its policy
is served over HTTPS by ``PolicyServer`` at ``mta-sts.x.test`` (127.0.0.1), with a
certificate of the test CA; its MX ``mx.x.test`` is a TLS sink with a certificate of the
same CA for that name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.models import Event, EventKind
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.integration.delivery.harness import DeliveryHarness
from tests.support.dns_server import DnsServer
from tests.support.pki import TestCa
from tests.support.policy_server import PolicyServer, policy_text
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
Start = Callable[..., Awaitable[DeliveryHarness]]


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def tls_sink(smtp_port: int, ca: TestCa) -> Iterator[SmtpSink]:
    issued = ca.issue("mx.x.test")
    with SmtpSink("127.0.0.1", smtp_port, issued.chain_file, issued.key_file) as server:
        yield server


@pytest.fixture
async def policy_host(ca: TestCa, dns: DnsServer) -> AsyncIterator[PolicyServer]:
    issued = ca.issue("mta-sts.x.test")
    dns.add_a("mta-sts.x.test", "127.0.0.1")
    dns.add_txt("_mta-sts.x.test", "v=STSv1; id=1")
    async with PolicyServer(issued.chain_file, issued.key_file) as server:
        yield server


@pytest.fixture
def start(
    start_delivery: StartDelivery, mx_for: MxFor, policy_host: PolicyServer, ca: TestCa
) -> Start:
    """Delivery with x.test's MX on the TLS sink and the policy host reachable."""

    async def started(**overrides: Any) -> DeliveryHarness:
        mx_for("x.test")
        section: dict[str, Any] = {
            "mta_sts_port": policy_host.port,
            "mta_sts_ca_file": str(ca.ca_file),
            "tls_ca_file": str(ca.ca_file),
            "dns_cache_ttl": 0,  # the tests change the TXT record
            "retry_schedule": "1m",
        }
        return await start_delivery(**{**section, **overrides})

    return started


def transcript(harness: DeliveryHarness) -> str:
    return "\n".join(
        line for e in harness.of(EventKind.CONVERSATION) for line in e.transcript or []
    )


def verified(event: Event) -> bool:
    return event.tls is not None and event.tls.verified is True


async def test_enforce_delivers_to_an_allowed_mx_only_over_verified_tls(
    start: Start, policy_host: PolicyServer, tls_sink: SmtpSink
) -> None:
    policy_host.policy = policy_text("enforce", "mx.x.test")
    harness = await start()
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert verified(delivered)
    assert tls_sink.wait_for(1, 5)[0].tls
    assert "TLS policy: MTA-STS enforce (policy 1, fetched)" in transcript(harness)
    report = harness.service.tls_reports.summary("x.test", "sts")
    assert (report.successes, report.failure_count) == (1, 0)


async def test_enforce_defers_when_no_mx_matches_the_policy(
    start: Start, policy_host: PolicyServer, tls_sink: SmtpSink
) -> None:
    policy_host.policy = policy_text("enforce", "*.elsewhere.test")
    harness = await start()
    await harness.send(["alice@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "alice@x.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.7.5")
    assert "mx.x.test is not an MX host the policy of x.test allows" in deferred.reply.text
    assert tls_sink.attempts == [] and tls_sink.messages == []
    report = harness.service.tls_reports.summary("x.test", "sts")
    assert report.failures == {"validation-failure": 1}


async def test_testing_mode_delivers_as_usual_and_records_the_failure(
    start: Start, policy_host: PolicyServer, tls_sink: SmtpSink
) -> None:
    policy_host.policy = policy_text("testing", "mx.x.test")
    harness = await start(tls_ca_file=None)  # the MX certificate cannot be verified now
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert not verified(delivered)
    assert tls_sink.wait_for(1, 5)[0].tls  # delivered with opportunistic TLS after all
    text = transcript(harness)
    assert "TLS report: sts failure: certificate-not-trusted" in text
    assert "retrying with tls_policy opportunistic" in text
    assert "TLS report: sts success" not in text  # the retry is not a second report
    report = harness.service.tls_reports.summary("x.test", "sts")
    assert (report.successes, dict(report.failures)) == (0, {"certificate-not-trusted": 1})


async def test_a_failed_fetch_without_a_cached_policy_delivers_without_one(
    start: Start, policy_host: PolicyServer, tls_sink: SmtpSink
) -> None:
    policy_host.policy = policy_text("enforce", "*.elsewhere.test")
    policy_host.status = 500
    harness = await start()
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert not verified(delivered)  # no policy: the domain's own (opportunistic) TLS
    assert "MTA-STS: no policy: fetch failed: HTTP 500" in transcript(harness)
    report = harness.service.tls_reports.summary("x.test", "sts")
    assert report.failures == {"sts-policy-fetch-error": 1}


async def test_a_failed_refresh_keeps_enforcing_the_cached_policy(
    start: Start, policy_host: PolicyServer, dns: DnsServer, tls_sink: SmtpSink
) -> None:
    policy_host.policy = policy_text("enforce", "mx.x.test")
    harness = await start()
    first = await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert verified(delivered)
    dns.clear("_mta-sts.x.test")
    dns.add_txt("_mta-sts.x.test", "v=STSv1; id=2")  # a new policy is announced ...
    policy_host.status = 500  # ... and cannot be fetched (an attacker blocks it)
    second = await harness.send(["bob@x.test"])
    [again] = await harness.wait_for(EventKind.DELIVERED, "bob@x.test")
    assert verified(again)
    assert policy_host.fetches == 2
    [talk] = [e for e in harness.of(EventKind.CONVERSATION) if e.message_id == second.message_id]
    assert "cached policy kept: fetch failed: HTTP 500" in "\n".join(talk.transcript or [])
    assert first.message_id != second.message_id
