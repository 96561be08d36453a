"""Consuming a work queue: one handler per message, settled by its outcome.

Contract: the handler gets a ``Delivery``. Returning acks the message. Raising
``Poison`` rejects it without requeue, so its queue dead-letters it to
``parked`` (after ``on_poison`` has been told why). Any other exception nacks
with requeue, so ``x-delivery-limit`` parks a message that keeps failing. A
failed ack or nack is only logged: the channel is gone and RabbitMQ returns
the message to the queue by itself. ``Consumer`` tracks in-flight handlers so a
drain can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from postline.models import ENVELOPE_HEADER, Envelope
from postline.topology import QueueSpec, Stage

log = logging.getLogger("postline.bus")


class Poison(Exception):
    """Raised by a handler for a message that can never be processed: park it now."""


@dataclass(frozen=True)
class Delivery:
    """One message taken from a work queue."""

    body: bytes
    headers: Mapping[str, Any]
    message_id: str | None
    routing_key: str | None
    redelivered: bool
    delivery_count: int

    def envelope(self) -> Envelope:
        """The envelope header; ``Poison`` if it is missing or unreadable."""
        raw = self.headers.get(ENVELOPE_HEADER)
        if not isinstance(raw, str | bytes):
            raise Poison(f"message {self.message_id} has no {ENVELOPE_HEADER} header")
        try:
            return Envelope.from_header(raw)
        except ValueError as error:
            raise Poison(f"message {self.message_id} has an invalid envelope: {error}") from None


Handler = Callable[[Delivery], Awaitable[None]]
PoisonCallback = Callable[[AbstractIncomingMessage, str], Awaitable[None]]


@dataclass
class Consumer:
    """One consumer of ``stage``'s queue with at most ``prefetch`` messages in flight."""

    stage: Stage
    handler: Handler
    prefetch: int
    channel: AbstractChannel | None = None
    queue: AbstractQueue | None = None
    tag: str | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def open(self) -> bool:
        return self.channel is not None and not self.channel.is_closed

    async def start(
        self, conn: AbstractRobustConnection, spec: QueueSpec, on_poison: PoisonCallback
    ) -> None:
        """Open a channel on ``conn`` (robust: restored after reconnects) and consume."""
        channel = await conn.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.inflight.add(task)
            try:
                await run_handler(self.handler, message, on_poison)
            finally:
                self.inflight.discard(task)

        self.channel, self.queue = channel, queue
        self.tag = await queue.consume(on_message)

    async def cancel(self) -> None:
        """Stop taking deliveries (in-flight handlers go on)."""
        if self.queue is not None and self.tag is not None:
            await self.queue.cancel(self.tag)


async def run_handler(
    handler: Handler, message: AbstractIncomingMessage, on_poison: PoisonCallback
) -> None:
    """Run ``handler`` and settle the message by its outcome (module docstring)."""
    try:
        await handler(delivery_of(message))
    except Poison as error:
        log.error("parking poison message: %s", error, extra={"message_id": message.message_id})
        await on_poison(message, str(error))
        await _settle(message.reject(requeue=False))
    except asyncio.CancelledError:
        await _settle(message.nack(requeue=True))
        raise
    except Exception:
        log.exception("handler failed; message requeued", extra={"message_id": message.message_id})
        await _settle(message.nack(requeue=True))
    else:
        await _settle(message.ack())


def delivery_of(message: AbstractIncomingMessage) -> Delivery:
    headers = dict(message.headers or {})
    count = headers.get("x-delivery-count", 0)
    return Delivery(
        body=message.body,
        headers=headers,
        message_id=message.message_id,
        routing_key=message.routing_key,
        redelivered=bool(message.redelivered),
        delivery_count=int(count) if isinstance(count, int) else 0,
    )


async def _settle(action: Awaitable[None]) -> None:
    """Ack/nack; a closed channel already returned the message to the queue."""
    try:
        await action
    except Exception as error:
        log.warning("could not settle message (%s); the broker will redeliver it", error)
