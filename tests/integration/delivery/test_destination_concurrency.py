"""per_destination_concurrency caps sessions per domain; a slow domain slows only itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def mx(dns: DnsServer) -> None:
    for domain in ("slow.test", "fast.test"):
        dns.add_mx(domain, 10, "mx.x.test")
    dns.add_a("mx.x.test", "127.0.0.1")


async def test_sessions_per_destination_are_capped(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery(per_destination_concurrency=2, concurrency=8)
    recipients = [f"slow0.4-{n}@slow.test" for n in range(5)]
    await asyncio.gather(*(harness.send([r]) for r in recipients))
    for recipient in recipients:
        await harness.wait_for(EventKind.DELIVERED, recipient, timeout=20)
    assert sink.peak_data == 2


async def test_without_a_cap_the_same_load_runs_in_parallel(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery(per_destination_concurrency=8, concurrency=8)
    recipients = [f"slow0.4-{n}@slow.test" for n in range(5)]
    await asyncio.gather(*(harness.send([r]) for r in recipients))
    for recipient in recipients:
        await harness.wait_for(EventKind.DELIVERED, recipient, timeout=20)
    assert sink.peak_data > 2


async def test_a_tarpitting_domain_does_not_starve_other_domains(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery(
        per_destination_concurrency=1,
        concurrency=3,
        destination_wait="0.5s",
        retry_schedule="1m",
    )
    for n in range(3):
        await harness.send([f"slow4-{n}@slow.test"])
    busy = await harness.wait_for(EventKind.DEFERRED, count=2, timeout=10)
    started = time.monotonic()
    await harness.send(["someone@fast.test"])
    await harness.wait_for(EventKind.DELIVERED, "someone@fast.test", timeout=10)
    assert time.monotonic() - started < 2.5, "the fast domain waited for the slow one"
    for event in busy:
        assert event.reply is not None and event.reply.enhanced == "4.4.5"
        assert event.recipient is not None and event.recipient.endswith("@slow.test")
    assert harness.of(EventKind.DELIVERED, "slow4-0@slow.test") == []  # still in its session
