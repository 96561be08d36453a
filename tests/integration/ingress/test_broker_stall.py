"""Ingress behind a broker that stalls (stops answering, connection kept open).

A publish already written when the broker stalls may still be queued when it
resumes. So the reply at ``publish_timeout`` must not claim "not queued", and
a message that does land must still get its ``received`` event, saying the
client was told to retry (so ``trace`` can explain a second copy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from postline.app.settings import Settings, topology_for
from postline.models import Event, EventKind
from postline.topology import Stage
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import take_all, take_bodies
from tests.support.broker import BROKER_URL, wait_until
from tests.support.stall_proxy import StallProxy

pytestmark = pytest.mark.integration
MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: stall\r\n\r\nHello.\r\n"


@pytest.fixture
def proxy() -> Iterator[StallProxy]:
    with StallProxy() as running:
        yield running


async def data_until_end(client: RawClient) -> None:
    """One transaction up to (not including) the final dot."""
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354


async def test_stalled_broker_gets_an_outcome_unknown_reply_and_the_late_message_its_event(
    proxy: StallProxy, start_ingress: StartIngress, broker_settings: Callable[..., Settings]
) -> None:
    settings = broker_settings()  # the namespace, registered for clean-up
    ingress = await start_ingress(broker={"url": proxy.url, "publish_timeout": "1s"})
    client = await RawClient.connect(*ingress.plain)
    await data_until_end(client)

    proxy.stall()
    await client.send(MESSAGE + b".\r\n")
    started = time.monotonic()
    reply = await client.reply(timeout=10)
    waited = time.monotonic() - started
    assert proxy.stalled_bytes > 0, "the stall caught nothing: the publish was not held"
    proxy.resume()
    await client.close()

    assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
    assert "not queued" not in reply.text, f"the outcome is unknown, not negative: {reply.text}"
    assert "may have been queued" in reply.text, reply.text
    assert waited < 5, f"answered after {waited:.1f}s, publish_timeout is 1s"

    topology = topology_for(settings)
    landed: list[Any] = []
    events: list[Event] = []

    async def message_landed() -> bool:
        landed.extend(await take_all(BROKER_URL, topology.queue_name(Stage.SUBMIT)))
        return bool(landed)

    async def received_event() -> bool:
        bodies = await take_bodies(BROKER_URL, topology.queue_name(Stage.EVENTS))
        events.extend(Event.from_json(body) for body in bodies)
        return any(e.kind is EventKind.RECEIVED for e in events)

    await wait_until(message_landed, 10, "the stalled publish to land in submit")
    [(body, envelope)] = landed
    assert body == MESSAGE
    await wait_until(received_event, 10, "a received event for the message that landed")
    [event] = [e for e in events if e.kind is EventKind.RECEIVED]
    assert event.message_id == envelope.message_id
    assert event.reason is not None
    assert "told to retry" in event.reason and "may arrive twice" in event.reason, event.reason


async def test_unreachable_broker_still_answers_not_queued_promptly(
    start_ingress: StartIngress,
) -> None:
    broker = {"url": "amqp://guest:guest@127.0.0.1:1/", "publish_timeout": "1s"}
    ingress = await start_ingress(connect=False, broker=broker)
    client = await RawClient.connect(*ingress.plain)
    await data_until_end(client)
    await client.send(MESSAGE + b".\r\n")
    started = time.monotonic()
    reply = await client.reply(timeout=10)
    await client.close()
    assert reply.text == "451 4.3.0 Local error; message not queued, try again later"
    assert time.monotonic() - started < 3
