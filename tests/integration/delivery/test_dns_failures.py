"""DNS answers decide: NXDOMAIN and null MX bounce, SERVFAIL and timeouts defer, no MX uses A."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_nxdomain_bounces_with_5_1_2(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    harness = await start_delivery()
    await harness.send(["someone@nowhere.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "someone@nowhere.test")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (550, "5.1.2")
    assert "nowhere.test" in bounced.reply.text
    assert bounced.mx_host is None
    assert bounced.reason == "DNS lookup failed"
    await harness.wait_for(EventKind.DSN_SENT)
    assert sink.attempts == []


async def test_null_mx_bounces_with_5_1_10(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.null_mx("nomail.test")
    dns.add_a("nomail.test", "127.0.0.1")
    harness = await start_delivery()
    await harness.send(["someone@nomail.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "someone@nomail.test")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (556, "5.1.10")
    assert sink.attempts == []


async def test_servfail_defers_with_4_4_3(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.servfail("broken.test")
    harness = await start_delivery(retry_schedule="1m")
    await harness.send(["someone@broken.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "someone@broken.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.3")
    assert "SERVFAIL" in deferred.reply.text
    await harness.flush(1)
    assert harness.of(EventKind.BOUNCED) == []


async def test_dns_timeout_defers_with_4_4_3(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.timeout("tarpit.test")
    harness = await start_delivery(retry_schedule="1m", dns_timeout="1s")
    await harness.send(["someone@tarpit.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "someone@tarpit.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.3")
    assert "timeout" in deferred.reply.text


async def test_servfail_is_not_cached_so_the_retry_can_succeed(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.servfail("later.test")
    harness = await start_delivery(retry_schedule="1s")
    await harness.send(["someone@later.test"])
    await harness.wait_for(EventKind.DEFERRED, "someone@later.test")
    dns.clear("later.test")
    dns.add_a("later.test", "127.0.0.1")
    await harness.wait_for(EventKind.DELIVERED, "someone@later.test", timeout=20)
    assert len(sink.wait_for(1, 5)) == 1


async def test_domain_without_mx_uses_its_address_records(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.add_a("implicit.test", "127.0.0.1")
    harness = await start_delivery()
    await harness.send(["someone@implicit.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "someone@implicit.test")
    assert delivered.mx_host == f"implicit.test[127.0.0.1]:{sink.port}"
    assert ("implicit.test", "MX") in dns.queries
