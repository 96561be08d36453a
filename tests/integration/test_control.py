"""The control stream on the real RabbitMQ: actions and done markers read back by every reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from postline.app.settings import Settings, topology_for
from postline.bus import Bus
from postline.control import (
    CONTROL_HEADER,
    ControlState,
    DoneMarker,
    OperatorAction,
    new_request_id,
    publish_control,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def action(name: str, *ids: str, at: datetime = T0, keep: bool = False) -> OperatorAction:
    return OperatorAction(new_request_id(), name, ids, "because", "ops", keep, at)  # type: ignore[arg-type]


@pytest.fixture
async def bus(broker_settings) -> AsyncIterator[Bus]:
    settings: Settings = broker_settings()
    bus = Bus(settings.broker, topology_for(settings), name="test", on_fatal=print)
    await bus.start()
    assert await bus.wait_connected(10), "bus did not connect"
    yield bus
    await bus.close()


async def new_state(bus: Bus) -> ControlState:
    state = ControlState(bus.topology.control_stream)
    await state.start(await bus.open_connection("control"))
    return state


async def test_records_published_before_a_reader_starts_are_read_back(bus: Bus) -> None:
    hold = action("hold", "M1", "M2", keep=True)
    await publish_control(bus, hold)
    await publish_control(bus, DoneMarker("M3", 2, hold.request_id, "C1"))
    await publish_control(bus, DoneMarker("M4", 0, hold.request_id))
    state = await new_state(bus)
    try:
        assert await state.wait_synced(10)
        assert state.action_for("M1") == hold
        assert state.action_for("M2") == hold
        assert state.action_for("M3") is None
        assert state.is_done("M3", 2, "C1")
        assert not state.is_done("M3", 2, "C2"), "another copy at the same attempt"
        assert not state.is_done("M3", 2)
        assert not state.is_done("M3", 1, "C1")
        assert not state.is_done("M1", 2, "C1")
        assert state.is_done("M4", 0) and state.is_done("M4", 0, None)
    finally:
        await state.close()


async def test_the_latest_action_wins_whatever_order_it_was_read_in(bus: Bus) -> None:
    hold = action("hold", "M1", "M2", at=T0)
    release = action("release", "M1", at=T0 + timedelta(minutes=1))
    stale = action("delete", "M2", at=T0 - timedelta(minutes=1))  # written late, older
    for record in (hold, release, stale):
        await publish_control(bus, record)
    state = await new_state(bus)
    try:
        assert await state.wait_synced(10)
        assert state.action_for("M1") == release
        assert state.action_for("M2") == hold
    finally:
        await state.close()


async def test_a_running_reader_sees_records_published_after_it_started(bus: Bus) -> None:
    state = await new_state(bus)
    try:
        assert await state.wait_synced(10)
        assert state.action_for("M9") is None
        retry = action("retry", "M9")
        await publish_control(bus, retry)
        assert await state.wait_synced(10)
        assert state.action_for("M9") == retry
    finally:
        await state.close()


async def test_wait_synced_is_false_when_not_started(bus: Bus) -> None:
    state = ControlState(bus.topology.control_stream)
    assert not await state.wait_synced(1)


async def test_a_restarted_reader_keeps_its_state_and_reads_on(bus: Bus) -> None:
    state = await new_state(bus)
    try:
        first = action("delete", "A")
        await publish_control(bus, first)
        assert await state.wait_synced(10)
        await state.start(await bus.open_connection("control-2"))  # e.g. after a fail-over
        second = action("bounce", "B")
        await publish_control(bus, second)
        assert await state.wait_synced(10)
        assert (state.action_for("A"), state.action_for("B")) == (first, second)
    finally:
        await state.close()


async def test_malformed_and_unknown_records_are_skipped_not_fatal(bus: Bus) -> None:
    connection = await aio_pika.connect(bus._broker.url)
    try:
        channel = await connection.channel()
        for kind, body in (("action", b"{not json"), ("future-kind", b"{}"), ("done", b"{}")):
            message = aio_pika.Message(body, headers={CONTROL_HEADER: kind})
            await channel.default_exchange.publish(message, bus.topology.control_stream)
    finally:
        await connection.close()
    good = action("delete", "OK")
    await publish_control(bus, good)
    state = await new_state(bus)
    try:
        assert await state.wait_synced(10)
        assert state.action_for("OK") == good
    finally:
        await state.close()


async def test_a_reader_on_a_robust_connection_reads_on_after_the_connection_drops(
    bus: Bus,
) -> None:
    connection = await aio_pika.connect_robust(bus._broker.url, reconnect_interval=0.2)
    state = ControlState(bus.topology.control_stream)
    try:
        await state.start(connection)
        before = action("hold", "A")
        await publish_control(bus, before)
        assert await state.wait_synced(10)
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        assert connection.transport is not None
        await connection.transport.connection.close(ConnectionError("dropped by the test"))
        await asyncio.wait_for(reconnected.wait(), 10)
        after = action("release", "A", at=T0 + timedelta(minutes=5))
        await publish_control(bus, after)
        assert await state.wait_synced(10), "the stream consumer was not restored"
        assert state.action_for("A") == after
    finally:
        await state.close()
        await connection.close()
