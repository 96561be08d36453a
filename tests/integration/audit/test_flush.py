"""The flusher on the real RabbitMQ: targeted copies move, the others keep their time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from postline.audit.flushplan import Request, SourceKind, sources
from postline.audit.parkedlog import parked_event
from postline.control import (
    COPY_HEADER,
    DUE_HEADER,
    EXPIRES_HEADER,
    FLUSH_HEADER,
    DoneMarker,
    publish_control,
)
from postline.models import ENVELOPE_HEADER, EventKind, stable_event_id
from postline.topology import Stage
from tests.integration.audit.flush_support import (
    BODY,
    SCHEDULE,
    Stack,
    depth,
    drain,
    envelope,
    now_ms,
    park_in_tier,
    stack,
)

pytestmark = pytest.mark.integration

IDS = [f"M{n:03d}" for n in range(40)]
TARGETS = frozenset(IDS[::3])


def request(action: str, ids: frozenset[str] = TARGETS, request_id: str = "R1") -> Request:
    return Request(request_id, action, ids, reason="test", actor="ops")


async def tier_source(s: Stack, tier: str) -> Any:
    [source] = [x for x in sources(s.topology, {SourceKind.TIER}) if x.queue.endswith(tier)]
    return source


async def test_retry_moves_the_targeted_messages_to_deliver_and_the_rest_keep_their_time(
    broker_settings,
):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        url, topology = settings.broker.url, s.topology
        await park_in_tier(s.bus, "1h", IDS, due_in_ms=30 * 60 * 1000)
        connection = await s.bus.open_connection("flush")
        report = await s.flusher.flush(connection, await tier_source(s, "1h"), [request("retry")])
        assert report.moved == TARGETS and report.put_back == len(IDS) - len(TARGETS)
        moved = await drain(url, topology.queue_name(Stage.DELIVER))
        kept = await drain(url, topology.tier_queue("1h"))
    assert sorted(m.message_id for m in moved) == sorted(TARGETS)
    for copy in moved:
        assert copy.headers[FLUSH_HEADER] == "R1" and ENVELOPE_HEADER in copy.headers
        assert DUE_HEADER not in copy.headers and copy.expiration is None
    assert sorted(m.message_id for m in kept) == sorted(set(IDS) - TARGETS)
    for message in kept:
        assert message.expiration is not None
        assert 30 * 60 - 60 < message.expiration <= 30 * 60, message.expiration
        assert message.headers[DUE_HEADER] > now_ms() and FLUSH_HEADER not in message.headers
        assert message.routing_key == Stage.DELIVER.value


async def test_a_message_whose_time_is_up_goes_straight_to_deliver_untouched(broker_settings):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        await park_in_tier(s.bus, "10m", ["LATE"], due_in_ms=-1000)
        await park_in_tier(s.bus, "10m", ["SOON"], due_in_ms=60_000)
        connection = await s.bus.open_connection("flush")
        await s.flusher.flush(connection, await tier_source(s, "10m"), [request("retry")])
        url = settings.broker.url
        delivered = await drain(url, s.topology.queue_name(Stage.DELIVER))
        kept = await drain(url, s.topology.tier_queue("10m"))
    assert [m.message_id for m in delivered] == ["LATE"]
    assert FLUSH_HEADER not in delivered[0].headers  # its own return, not the operator's
    assert [m.message_id for m in kept] == ["SOON"]


async def test_held_messages_keep_their_remaining_lifetime_and_kept_ones_none(broker_settings):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        held = s.topology.held_queue
        for mid, extra in (("H1", {EXPIRES_HEADER: now_ms() + 3_600_000}), ("H2", {}), ("H3", {})):
            await s.bus.publish_to_queue(
                held, BODY, message_id=mid,
                headers={ENVELOPE_HEADER: envelope(mid).to_header(), **extra},
                expiration=3600 if extra else None,
            )  # fmt: skip
        connection = await s.bus.open_connection("flush")
        [source] = sources(s.topology, {SourceKind.HELD})
        report = await s.flusher.flush(connection, source, [request("release", frozenset({"H3"}))])
        assert report.moved == {"H3"}
        url = settings.broker.url
        kept = {m.message_id: m for m in await drain(url, held)}
        moved = await drain(url, s.topology.queue_name(Stage.DELIVER))
    assert set(kept) == {"H1", "H2"} and [m.message_id for m in moved] == ["H3"]
    assert kept["H1"].expiration is not None and 3500 < kept["H1"].expiration <= 3600
    assert kept["H2"].expiration is None


async def test_a_duplicate_whose_copy_was_handled_is_dropped_by_a_later_flush(broker_settings):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        await park_in_tier(s.bus, "1h", ["D1", "D2"], due_in_ms=600_000)
        await publish_control(s.bus, DoneMarker("D1", 1, "R0", "copy-D1"))  # its copy was handled
        assert await s.state.wait_synced(10)
        connection = await s.bus.open_connection("flush")
        source = await tier_source(s, "1h")
        report = await s.flusher.flush(connection, source, [request("retry", frozenset({"D1"}))])
        assert report.duplicates == {"D1"} and not report.moved
        left = await drain(settings.broker.url, s.topology.tier_queue("1h"))
    assert [m.message_id for m in left] == ["D2"]


async def test_a_parked_message_is_released_to_its_stage_and_deleted_ones_are_settled(
    broker_settings,
):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        topology, url = s.topology, settings.broker.url
        parked = topology.parked_queue
        ns = topology.namespace
        for mid, queue in (("P1", f"{ns}.deliver"), ("P2", f"{ns}.submit"), ("P3", f"{ns}.events")):
            death = [{"count": 1, "reason": "delivery_limit", "queue": queue, "exchange": "",
                      "routing-keys": [queue.rsplit(".", 1)[1]]}]  # fmt: skip
            headers: dict[str, Any] = {"x-death": death}
            if mid != "P3":
                headers[ENVELOPE_HEADER] = envelope(mid).to_header()
            await s.bus.publish_to_queue(parked, BODY, message_id=mid, headers=headers)
        connection = await s.bus.open_connection("flush")
        [source] = sources(topology, {SourceKind.PARKED})
        releases = request("release", frozenset({"P1", "P2"}), "R1")
        deletes = request("delete", frozenset({"P3"}), "R2")
        report = await s.flusher.flush(connection, source, [releases, deletes])
        assert report.moved == {"P1", "P2", "P3"} and await depth(url, parked) == 0
        to_deliver = await drain(url, topology.queue_name(Stage.DELIVER))
        to_submit = await drain(url, topology.queue_name(Stage.SUBMIT))
        events = await drain(url, topology.queue_name(Stage.EVENTS))
        assert await s.state.wait_synced(10)
        assert s.state.is_done("P2", 1, f"parked:{ns}.submit:1")  # no delivery sees submit
    assert [m.message_id for m in to_deliver] == ["P1"] and [m.message_id for m in to_submit] == [
        "P2"
    ]
    assert to_deliver[0].headers["x-death"][0]["queue"].endswith(".deliver")  # counts go on
    assert {m.message_id for m in events} == {  # the operator events the flusher owes
        stable_event_id("P2", "operator", "R1"),  # released to submit: no delivery sees it
        stable_event_id("P3", "operator", "R2"),  # a parked event, deleted: dropped
    }


async def test_the_parked_log_turns_a_broker_parked_message_into_one_event(broker_settings):
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        topology = s.topology
        queue = topology.queue_name(Stage.DELIVER)
        await s.bus.publish_stage(Stage.DELIVER, BODY, envelope("X1"))
        # make the broker park it: reject with requeue until the delivery limit is passed
        import aio_pika

        connection = await aio_pika.connect(settings.broker.url)
        try:
            channel = await connection.channel()
            work = await channel.declare_queue(queue, passive=True)
            for _ in range(settings.broker.delivery_limit + 1):
                message = await _get(work)
                await message.nack(requeue=True)
            log = await channel.declare_queue(topology.parked_log_queue, passive=True)
            copy = await _get(log)
            event = parked_event(dict(copy.headers or {}), copy.message_id, topology.namespace)
            await copy.ack()
        finally:
            await connection.close()
    assert event is not None and event.kind is EventKind.PARKED
    assert (event.stage, event.reason, event.message_id) == ("deliver", "delivery_limit", "X1")


async def _get(queue: Any) -> Any:
    for _ in range(200):
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue.name}")


async def test_a_held_message_is_not_taken_for_the_copy_whose_hold_put_it_there(broker_settings):
    """Holding a copy leaves a done marker of the same id and attempt: the held one is new."""
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        await publish_control(s.bus, DoneMarker("H1", 1, "R-hold", "copy-in-tier"))
        assert await s.state.wait_synced(10)
        headers = {ENVELOPE_HEADER: envelope("H1").to_header(), COPY_HEADER: "copy-in-held"}
        await s.bus.publish_to_queue(s.topology.held_queue, BODY, message_id="H1", headers=headers)
        connection = await s.bus.open_connection("flush")
        [source] = sources(s.topology, {SourceKind.HELD})
        report = await s.flusher.flush(connection, source, [request("release", frozenset({"H1"}))])
        moved = await drain(settings.broker.url, s.topology.queue_name(Stage.DELIVER))
    assert report.moved == {"H1"} and not report.duplicates
    assert [m.headers[COPY_HEADER] for m in moved] == ["copy-in-held"]
