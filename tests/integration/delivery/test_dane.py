"""DANE (RFC 7672): TLSA records from a validating resolver make TLS mandatory and authenticate.

The test DNS server plays the validating resolver: with ``authenticated`` set its answers
carry the AD bit. ``mx.x.test`` is a TLS sink whose certificate the test CA issued; the
TLSA records sit at ``_<smtp_port>._tcp.mx.x.test``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.integration.delivery.harness import DeliveryHarness
from tests.support.dns_server import DnsServer
from tests.support.pki import Issued, TestCa, tlsa
from tests.support.policy_server import PolicyServer, policy_text
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
Start = Callable[..., Awaitable[DeliveryHarness]]


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def issued(ca: TestCa) -> Issued:
    return ca.issue("mx.x.test")


@pytest.fixture
def tls_sink(smtp_port: int, issued: Issued) -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", smtp_port, issued.chain_file, issued.key_file) as server:
        yield server


@pytest.fixture
def start(start_delivery: StartDelivery, mx_for: MxFor, dns: DnsServer) -> Start:
    async def started(**overrides: Any) -> DeliveryHarness:
        mx_for("x.test")
        dns.authenticated = True
        section = {"dane": True, "dnssec_resolver": True, "retry_schedule": "1m"}
        return await start_delivery(**{**section, **overrides})

    return started


def transcript(harness: DeliveryHarness) -> str:
    return "\n".join(
        line for e in harness.of(EventKind.CONVERSATION) for line in e.transcript or []
    )


@pytest.mark.parametrize("usage", ["DANE-EE 3 1 1", "DANE-TA 2 0 1"])
async def test_a_certificate_matching_the_tlsa_records_is_delivered_to_as_verified(
    start: Start, dns: DnsServer, issued: Issued, tls_sink: SmtpSink, smtp_port: int, usage: str
) -> None:
    record = tlsa(3, 1, 1, issued.leaf) if usage.startswith("DANE-EE") else tlsa(2, 0, 1, issued.ca)
    dns.add_tlsa(f"_{smtp_port}._tcp.mx.x.test", record)
    harness = await start()
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert delivered.tls is not None and delivered.tls.verified is True
    assert tls_sink.wait_for(1, 5)[0].tls
    assert f"certificate verified ({usage}" in transcript(harness)
    assert harness.service.tls_reports.summary("x.test", "tlsa").successes == 1


async def test_a_certificate_not_matching_the_tlsa_records_is_a_temporary_failure(
    start: Start, dns: DnsServer, ca: TestCa, tls_sink: SmtpSink, smtp_port: int
) -> None:
    other = ca.issue("other.x.test")
    dns.add_tlsa(f"_{smtp_port}._tcp.mx.x.test", tlsa(3, 1, 1, other.leaf))
    harness = await start()
    await harness.send(["alice@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "alice@x.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.7.5")
    assert "DANE" in deferred.reply.text
    assert tls_sink.attempts == [] and tls_sink.messages == []
    report = harness.service.tls_reports.summary("x.test", "tlsa")
    assert report.failures == {"certificate-not-trusted": 1}


async def test_tlsa_records_the_resolver_did_not_validate_are_ignored(
    start: Start, dns: DnsServer, ca: TestCa, tls_sink: SmtpSink, smtp_port: int
) -> None:
    name = f"_{smtp_port}._tcp.mx.x.test"
    dns.add_tlsa(name, tlsa(3, 1, 1, ca.issue("other.x.test").leaf))
    dns.insecure(name)  # no AD bit: anyone could have forged this answer
    harness = await start()
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert delivered.tls is not None and delivered.tls.verified is False  # opportunistic


async def test_dane_wins_over_mta_sts(
    start: Start, dns: DnsServer, ca: TestCa, issued: Issued, tls_sink: SmtpSink, smtp_port: int
) -> None:
    # The MTA-STS policy does not allow mx.x.test (enforce would defer); its TLSA records do.
    dns.add_tlsa(f"_{smtp_port}._tcp.mx.x.test", tlsa(3, 1, 1, issued.leaf))
    dns.add_txt("_mta-sts.x.test", "v=STSv1; id=1")
    dns.add_a("mta-sts.x.test", "127.0.0.1")
    web = ca.issue("mta-sts.x.test")
    async with PolicyServer(web.chain_file, web.key_file) as policy_host:
        policy_host.policy = policy_text("enforce", "*.elsewhere.test")
        harness = await start(mta_sts_port=policy_host.port, mta_sts_ca_file=str(ca.ca_file))
        await harness.send(["alice@x.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert delivered.tls is not None and delivered.tls.verified is True
    assert "TLS policy: DANE" in transcript(harness)
    assert policy_host.fetches == 1
