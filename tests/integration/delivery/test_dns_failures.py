"""DNS answers decide: NXDOMAIN and null MX bounce, SERVFAIL and timeouts defer, no MX uses A."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from postline.models import EventKind, Peer
from tests.integration.delivery.conftest import StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


def null_mx(dns: DnsServer) -> None:
    dns.null_mx("nomail.test")
    dns.add_a("nomail.test", "127.0.0.1")  # an address, but the domain says: no mail


def nothing(dns: DnsServer) -> None:
    """No records at all: the name does not exist."""


@pytest.mark.parametrize(
    ("domain", "zone", "code", "enhanced"),
    [
        pytest.param("nowhere.test", nothing, 550, "5.1.2", id="nxdomain"),
        pytest.param("nomail.test", null_mx, 556, "5.1.10", id="null-mx"),
    ],
)
async def test_a_domain_that_takes_no_mail_bounces_without_a_connection(
    start_delivery: StartDelivery,
    dns: DnsServer,
    sink: SmtpSink,
    domain: str,
    zone: Callable[[DnsServer], None],
    code: int,
    enhanced: str,
) -> None:
    zone(dns)
    harness = await start_delivery()
    await harness.send([f"someone@{domain}"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, f"someone@{domain}")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (code, enhanced)
    assert domain in bounced.reply.text
    assert (bounced.mx, bounced.session_id) == (None, None)  # no host was ever reached
    assert bounced.reason == "DNS lookup failed"
    await harness.wait_for(EventKind.DSN_SENT)
    assert sink.attempts == []


@pytest.mark.parametrize(
    ("failure", "overrides", "words"),
    [
        pytest.param("servfail", {}, "SERVFAIL", id="servfail"),
        pytest.param("timeout", {"dns_timeout": "1s"}, "timeout", id="timeout"),
    ],
)
async def test_a_dns_failure_that_may_pass_defers_with_4_4_3(
    start_delivery: StartDelivery,
    dns: DnsServer,
    sink: SmtpSink,
    failure: str,
    overrides: dict[str, Any],
    words: str,
) -> None:
    getattr(dns, failure)("broken.test")
    harness = await start_delivery(retry_schedule="1m", **overrides)
    await harness.send(["someone@broken.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "someone@broken.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.3")
    assert words in deferred.reply.text
    await harness.flush(1)
    assert harness.of(EventKind.BOUNCED) == []


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
    assert delivered.mx == Peer(name="implicit.test", ip="127.0.0.1", port=sink.port)
    assert ("implicit.test", "MX") in dns.queries
