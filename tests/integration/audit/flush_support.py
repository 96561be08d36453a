"""Shared by the flush tests: a bus in a fresh namespace, messages put in queues, queues read back.

``stack(settings)`` starts a ``Bus`` (which declares the whole topology, the held
queue and the control stream included), a ``ControlState`` and a ``Flusher``
whose done markers go to the control stream. ``park_in_tier`` publishes
messages to a retry tier as delivery does (``postline-due`` set); ``drain``
takes every message out of a queue (acked) and returns what it saw.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika

from postline.app.settings import Settings, topology_for
from postline.audit.flush import Flusher, Publisher
from postline.audit.flushplan import Done
from postline.bus import Bus
from postline.control import COPY_HEADER, DUE_HEADER, ControlState, DoneMarker, publish_control
from postline.models import Envelope
from postline.topology import Stage

SCHEDULE = {"delivery": {"retry_schedule": "10m,1h"}}
BODY = b"Subject: test\r\n\r\nhello\r\n"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(message_id: str, attempt: int = 1) -> Envelope:
    return Envelope(message_id=message_id, mail_from="mary@company.test",
                    rcpt_to=(f"{message_id.lower()}@partner.test",), attempt=attempt)  # fmt: skip


@dataclass
class Stack:
    settings: Settings
    bus: Bus
    state: ControlState
    flusher: Flusher

    @property
    def topology(self) -> Any:
        return self.bus.topology


def make_flusher(bus: Bus, state: ControlState, publisher: Publisher | None = None,
                 window: int = 16) -> Flusher:  # fmt: skip
    async def publish_done(done: Done) -> None:
        await publish_control(
            bus, DoneMarker(done.message_id, done.attempt, done.request_id, done.copy)
        )

    return Flusher(
        bus.topology,
        publisher or bus,
        is_done=state.is_done,
        publish_done=publish_done,
        publish_events=bus.publish_events,
        window=window,
    )


@asynccontextmanager
async def stack(settings: Settings, window: int = 16) -> AsyncIterator[Stack]:
    bus = Bus(settings.broker, topology_for(settings), name="flush-test", on_fatal=print)
    await bus.start()
    assert await bus.wait_connected(15), "bus did not connect"
    state = ControlState(bus.topology.control_stream)
    await state.start(await bus.open_connection("control"))
    try:
        yield Stack(settings, bus, state, make_flusher(bus, state, window=window))
    finally:
        await state.close()
        await bus.close()


async def park_in_tier(bus: Bus, tier: str, ids: list[str], due_in_ms: int, **extra: Any) -> None:
    for message_id in ids:
        headers = {DUE_HEADER: now_ms() + due_in_ms, COPY_HEADER: f"copy-{message_id}", **extra}
        await bus.publish_delayed(Stage.DELIVER, tier, BODY, envelope(message_id), headers)


@dataclass(frozen=True)
class Seen:
    message_id: str
    headers: dict[str, Any]
    expiration: float | None
    routing_key: str | None


async def drain(url: str, queue_name: str) -> list[Seen]:
    """Every message now in ``queue_name``, taken out (acked)."""
    connection = await aio_pika.connect(url, timeout=10)
    seen: list[Seen] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            seen.append(Seen(message.message_id or "", dict(message.headers or {}),
                             _seconds(message.expiration), message.routing_key))  # fmt: skip
            await message.ack()
    finally:
        await connection.close()
    return seen


async def depth(url: str, queue_name: str) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


def _seconds(expiration: object) -> float | None:
    return float(expiration) if isinstance(expiration, int | float) else None
