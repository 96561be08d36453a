"""After the remote accepted, trouble publishing the events must not deliver the mail again.

The delivery service talks to RabbitMQ through a ``StallProxy`` (the test's
own harness bus goes straight to the broker, so it sees what landed). The
sink holds the end-of-data reply for a moment (``slow1-``) so the broker can
be stalled while the SMTP transaction is still open: the events of the
delivered recipient are then published into the stall.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from postline.app.settings import Settings, context_for
from postline.bus import PublishError
from postline.delivery.main import DeliveryService
from postline.models import Event, EventKind
from tests.integration.delivery.conftest import MxFor
from tests.integration.delivery.harness import DeliveryHarness, delivery_section
from tests.support.broker import make_settings, wait_until
from tests.support.dns_server import DnsServer
from tests.support.sink import SmtpSink
from tests.support.stall_proxy import StallProxy

pytestmark = pytest.mark.integration
PUBLISH_TIMEOUT = 1.0
Start = Callable[..., Awaitable[DeliveryHarness]]


@pytest.fixture
def proxy() -> Iterator[StallProxy]:
    with StallProxy() as running:
        yield running


@pytest.fixture
async def start(
    broker_settings: Callable[..., Settings],
    dns: DnsServer,
    mx_for: MxFor,
    smtp_port: int,
    proxy: StallProxy,
) -> AsyncIterator[Start]:
    """A harness on the broker itself around a delivery service that goes through ``proxy``."""
    mx_for("x.test")
    started: list[DeliveryHarness] = []

    async def make() -> DeliveryHarness:
        broker = {"publish_timeout": f"{PUBLISH_TIMEOUT}s"}
        section = delivery_section(dns.address, smtp_port)
        direct = broker_settings(broker=broker, delivery=section)
        proxied = make_settings(
            direct.broker.namespace, broker={**broker, "url": proxy.url}, delivery=section
        )
        harness = DeliveryHarness(direct)
        harness.service = DeliveryService(
            proxied.delivery, context_for(proxied), harness.supervisor
        )
        started.append(harness)
        await harness.start()
        return harness

    yield make
    proxy.resume()
    for harness in started:
        await harness.stop()


async def test_events_published_into_a_stall_after_the_remote_accepted_do_not_redeliver(
    start: Start, sink: SmtpSink, proxy: StallProxy
) -> None:
    harness = await start()
    rcpt = "slow1-alice@x.test"  # the sink waits 1 s before its 250 to the final dot
    envelope = await harness.send([rcpt])
    await wait_until(lambda: (rcpt, 250) in sink.attempts, 10, "the SMTP transaction to start")
    proxy.stall()
    await wait_until(lambda: sink.messages, 10, "the remote to accept the message")
    await wait_until(lambda: proxy.held_bytes > 0, 5, "the event publish to be held by the stall")
    await asyncio.sleep(3 * PUBLISH_TIMEOUT)  # a stall of a known length, past the deadline
    proxy.resume()

    [delivered] = await harness.wait_for(EventKind.DELIVERED, rcpt)
    assert delivered.message_id == envelope.message_id
    await harness.flush(1)
    assert len(sink.messages) == 1, f"delivered {len(sink.messages)} times"
    assert len(harness.of(EventKind.DELIVERED, rcpt)) == 1


async def test_a_failed_event_publish_is_retried_without_delivering_again(
    start: Start, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = await start()
    bus = harness.service.worker.bus
    real = bus.publish_events
    failures: list[list[Event]] = []

    async def fails_once(events: list[Event], *args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(events)
            raise PublishError("broker refused the message: nacked")
        await real(events, *args, **kwargs)

    monkeypatch.setattr(bus, "publish_events", fails_once)
    await harness.send(["bob@x.test"])
    await harness.wait_for(EventKind.DELIVERED, "bob@x.test")
    await harness.flush(1)
    assert failures, "the event publish never failed: the test proved nothing"
    assert len(sink.messages) == 1, f"delivered {len(sink.messages)} times"
