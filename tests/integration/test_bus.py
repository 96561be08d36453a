"""The bus against the real RabbitMQ: confirms, returns, delays, parking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from postline.app.settings import Settings, topology_for
from postline.bus import Bus, Delivery, Poison, PublishError, PublishUnconfirmed
from postline.models import Envelope, new_message_id
from postline.topology import Stage
from tests.support.broker import BROKER_URL, make_settings, queue_depth, wait_until
from tests.support.stall_proxy import StallProxy

pytestmark = pytest.mark.integration


def envelope() -> Envelope:
    return Envelope(message_id=new_message_id(), mail_from="a@example.org", rcpt_to=("b@x.test",))


class Buses:
    def __init__(self) -> None:
        self.started: list[Bus] = []
        self.fatal: list[str] = []

    async def start(
        self,
        settings: Settings,
        consumers: dict[Stage, Callable[..., object]] | None = None,
        connect: bool = True,
    ) -> Bus:
        bus = Bus(settings.broker, topology_for(settings), name="test", on_fatal=self.fatal.append)
        for stage, handler in (consumers or {}).items():
            bus.add_consumer(stage, handler, prefetch=4)  # type: ignore[arg-type]
        await bus.start()
        self.started.append(bus)
        if connect:
            assert await bus.wait_connected(10), "bus did not connect"
        return bus


@pytest.fixture
async def buses() -> AsyncIterator[Buses]:
    holder = Buses()
    yield holder
    for bus in holder.started:
        await bus.drain(1)
        await bus.close()


async def test_confirmed_publish_reaches_its_work_queue(broker_settings, buses) -> None:
    settings = broker_settings()
    received: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery)

    bus = await buses.start(settings, {Stage.DELIVER: handler})
    env = envelope()
    await bus.publish_stage(Stage.DELIVER, b"Subject: hi\r\n\r\nbody\r\n", env)
    await wait_until(lambda: len(received) == 1, 10, "the message to be consumed")
    assert received[0].body == b"Subject: hi\r\n\r\nbody\r\n"
    assert received[0].envelope() == env
    assert received[0].message_id == env.message_id


async def test_unroutable_publish_raises_instead_of_succeeding(broker_settings, buses) -> None:
    bus = await buses.start(broker_settings())
    with pytest.raises(PublishError, match="unroutable"):
        await bus.publish(bus.topology.work_exchange, "no-such-stage", b"x", message_id="m1")


async def test_publish_without_a_broker_raises_within_the_publish_timeout(buses) -> None:
    from tests.support.broker import make_settings

    settings = make_settings(
        "unreachable", broker={"url": "amqp://guest:guest@127.0.0.1:1/", "publish_timeout": "1s"}
    )
    bus = await buses.start(settings, connect=False)
    started = time.monotonic()
    with pytest.raises(PublishError, match="no confirm") as raised:
        await bus.publish_stage(Stage.SUBMIT, b"x", envelope())
    assert time.monotonic() - started < 3
    assert not isinstance(raised.value, PublishUnconfirmed), "nothing was sent: not queued"
    assert not bus.ready


@pytest.fixture
def proxy() -> Iterator[StallProxy]:
    with StallProxy() as running:
        yield running


def through(proxy: StallProxy, direct: Settings) -> Settings:
    """``direct``'s namespace, reached through ``proxy``, with a 1 s publish timeout."""
    broker = {"url": proxy.url, "publish_timeout": "1s"}
    return make_settings(direct.broker.namespace, broker=broker)


async def stall_for(proxy: StallProxy, seconds: float) -> None:
    """A stall of a known length (the fault), then the broker answers again."""
    await asyncio.sleep(seconds)
    proxy.resume()


async def test_publish_sent_into_a_stall_waits_for_the_late_confirm_instead_of_failing(
    proxy, broker_settings, buses
) -> None:
    direct = broker_settings()
    bus = await buses.start(through(proxy, direct))
    proxy.stall()
    resume = asyncio.ensure_future(stall_for(proxy, 2.5))
    started = time.monotonic()
    await bus.publish_stage(Stage.DELIVER, b"late", envelope())
    assert time.monotonic() - started >= 2.4, "confirmed during the stall?"
    await resume
    queue = bus.topology.queue_name(Stage.DELIVER)
    assert await queue_depth(BROKER_URL, queue) == 1


async def test_impatient_publish_into_a_stall_is_unconfirmed_then_confirmed_late(
    proxy, broker_settings, buses
) -> None:
    direct = broker_settings()
    bus = await buses.start(through(proxy, direct))
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(PublishUnconfirmed, match="may be queued") as raised:
        await bus.publish_stage(Stage.SUBMIT, b"late", envelope(), patient=False)
    assert time.monotonic() - started < 3
    assert proxy.stalled_bytes > 0
    proxy.resume()
    assert await raised.value.confirmed() is True
    queue = bus.topology.queue_name(Stage.SUBMIT)
    assert await queue_depth(BROKER_URL, queue) == 1


async def test_tier_queue_returns_message_to_its_work_queue_after_ttl(
    broker_settings, buses
) -> None:
    settings = broker_settings(delivery={"retry_schedule": "2s", "max_queue_lifetime": "1h"})
    arrived: list[float] = []

    async def handler(delivery: Delivery) -> None:
        assert delivery.routing_key == Stage.DELIVER.value
        arrived.append(time.monotonic())

    bus = await buses.start(settings, {Stage.DELIVER: handler})
    assert bus.topology.tiers == ("2s",)
    sent = time.monotonic()
    await bus.publish_delayed(Stage.DELIVER, "2s", b"retry me", envelope())
    await asyncio.sleep(0.5)
    assert arrived == [], "the message skipped its tier's wait"
    await wait_until(lambda: len(arrived) == 1, 15, "the tier to dead-letter the message back")
    assert arrived[0] - sent >= 1.9


async def test_message_crashing_its_consumer_past_the_delivery_limit_is_parked(
    broker_settings, buses
) -> None:
    settings = broker_settings(broker={"delivery_limit": 2})
    attempts: list[int] = []

    async def crashing(delivery: Delivery) -> None:
        attempts.append(delivery.delivery_count)
        raise RuntimeError("worker bug")

    bus = await buses.start(settings, {Stage.SUBMIT: crashing})
    await bus.publish_stage(Stage.SUBMIT, b"poison", envelope())
    parked = bus.topology.parked_queue
    await wait_until(lambda: queue_depth(settings.broker.url, parked), 20, "the message in parked")
    assert await queue_depth(settings.broker.url, parked) == 1
    assert len(attempts) == 3, attempts  # first delivery plus two redeliveries
    assert await queue_depth(settings.broker.url, bus.topology.queue_name(Stage.SUBMIT)) == 0


async def test_poison_raised_by_a_handler_parks_the_message_at_once_and_says_so(
    broker_settings, buses
) -> None:
    settings = broker_settings()
    calls: list[str | None] = []

    async def poison(delivery: Delivery) -> None:
        calls.append(delivery.message_id)
        delivery.envelope()  # the header is missing: Poison

    bus = await buses.start(settings, {Stage.SUBMIT: poison})
    await bus.publish(bus.topology.work_exchange, "submit", b"no envelope", message_id="bare")
    parked = bus.topology.parked_queue
    await wait_until(lambda: queue_depth(settings.broker.url, parked), 20, "the message in parked")
    assert calls == ["bare"]
    events = bus.topology.queue_name(Stage.EVENTS)
    await wait_until(lambda: queue_depth(settings.broker.url, events), 10, "the parked event")
    with pytest.raises(Poison):
        Delivery(b"", {}, "x", None, False, 0).envelope()


async def test_failed_handler_requeues_and_the_retry_acks(broker_settings, buses) -> None:
    settings = broker_settings()
    calls: list[bool] = []

    async def flaky(delivery: Delivery) -> None:
        calls.append(delivery.redelivered)
        if len(calls) == 1:
            raise ConnectionError("downstream hiccup")

    bus = await buses.start(settings, {Stage.SUBMIT: flaky})
    await bus.publish_stage(Stage.SUBMIT, b"again", envelope())
    await wait_until(lambda: len(calls) == 2, 10, "the redelivery")
    assert calls == [False, True]
    queue = bus.topology.queue_name(Stage.SUBMIT)
    await wait_until(lambda: _empty(settings.broker.url, queue), 10, "the queue to be empty")
    assert len(calls) == 2


async def _empty(url: str, queue: str) -> bool:
    return await queue_depth(url, queue) == 0


async def test_bus_with_several_urls_skips_a_node_that_is_down(broker_settings, buses) -> None:
    direct = broker_settings()
    down = "amqp://guest:guest@127.0.0.1:1/"
    settings = make_settings(direct.broker.namespace, broker={"url": [down, BROKER_URL]})
    assert settings.broker.urls == (down, BROKER_URL)
    received: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery)

    bus = await buses.start(settings, {Stage.SUBMIT: handler})
    await bus.publish_stage(Stage.SUBMIT, b"to whichever node is up", envelope())
    await wait_until(lambda: received, 10, "the message to be consumed")
    assert bus.ready


class InOrder:
    """Stands in for ``random`` in ``postline.bus``: nodes are tried in the order given."""

    @staticmethod
    def sample(population: tuple[str, ...], k: int) -> list[str]:
        return list(population)[:k]


async def test_losing_its_node_moves_the_bus_to_the_next_node_and_consuming_resumes(
    broker_settings, buses, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import postline.bus

    monkeypatch.setattr(postline.bus, "random", InOrder, raising=False)
    direct = broker_settings()
    received: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.body)

    with StallProxy() as first, StallProxy() as second:
        urls = [first.url, second.url]
        settings = make_settings(direct.broker.namespace, broker={"url": urls})
        bus = await buses.start(settings, {Stage.SUBMIT: handler})
        await bus.publish_stage(Stage.SUBMIT, b"before", envelope())
        await wait_until(lambda: received == [b"before"], 10, "the first message")
        first.close()  # the node dies: its connections reset, new ones refused
        await wait_until(lambda: "lost the broker node" in caplog.text, 5, "the loss noticed")
        await wait_until(lambda: bus.ready, 15, "the bus to reconnect through the second node")
        await bus.publish_stage(Stage.SUBMIT, b"after", envelope())
        await wait_until(lambda: b"after" in received, 10, "consuming to resume")
        assert second.stalled_bytes == 0 and not buses.fatal


async def test_a_publish_in_flight_when_its_node_dies_fails_rather_than_vanishing(
    broker_settings, buses, monkeypatch: pytest.MonkeyPatch
) -> None:
    import postline.bus

    monkeypatch.setattr(postline.bus, "random", InOrder, raising=False)
    direct = broker_settings()
    with StallProxy() as first, StallProxy() as second:
        settings = make_settings(
            direct.broker.namespace,
            broker={"url": [first.url, second.url], "publish_timeout": "5s"},
        )
        bus = await buses.start(settings)
        first.stall()  # sent, but no confirm can come back through this node
        flight = asyncio.ensure_future(bus.publish_stage(Stage.SUBMIT, b"x", envelope()))
        await wait_until(lambda: first.stalled_bytes > 0, 5, "the publish to be sent")
        first.close()
        with pytest.raises(PublishUnconfirmed):
            await asyncio.wait_for(flight, 10)
        await wait_until(lambda: bus.ready, 15, "the bus on the second node")
        await bus.publish_stage(Stage.SUBMIT, b"y", envelope())


async def test_published_messages_carry_the_amqp_timestamp(broker_settings, buses) -> None:
    import aio_pika

    settings = broker_settings()
    bus = await buses.start(settings)
    before = time.time()
    await bus.publish_stage(Stage.DELIVER, b"stamped", envelope())
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.topology.queue_name(Stage.DELIVER), passive=True)
        message = await queue.get(timeout=5)
        assert message is not None and message.timestamp is not None
        await message.ack()
    assert before - 1 <= message.timestamp.timestamp() <= time.time() + 1
