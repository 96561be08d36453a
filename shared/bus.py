"""The message bus: confirmed publishing and acknowledged consuming on RabbitMQ.

Contract:

* ``publish`` returns only once RabbitMQ has confirmed the message (persistent,
  mandatory). It raises ``PublishError`` if the broker is unreachable, nacks,
  returns the message as unroutable, or the overall ``publish_timeout`` passes.
* ``consume`` runs a handler per message. Returning acks; raising ``Poison``
  rejects without requeue (the queue dead-letters it to ``parked``); any other
  exception nacks with requeue, so ``x-delivery-limit`` eventually parks a
  message that keeps failing. Handlers must await their own publishes before
  returning: that is "ack after hand-off".
* Publishing and consuming use separate connections (a resource alarm blocks
  publishers only). Both reconnect on their own; consumers are restored.
* ``drain`` stops taking deliveries and waits for in-flight handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind
from postline.settings import BrokerSettings
from postline.topology import TIER_HEADER, Stage, Topology, TopologyMismatch, declare

log = logging.getLogger("postline.bus")


class PublishError(Exception):
    """The broker did not confirm the publish; nothing can be promised to anyone."""


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
FatalCallback = Callable[[str], None]


@dataclass
class _Consumer:
    stage: Stage
    handler: Handler
    prefetch: int
    channel: AbstractChannel | None = None
    queue: AbstractQueue | None = None
    tag: str | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class Bus:
    """Connections, publishing and consumers of one service."""

    def __init__(
        self, broker: BrokerSettings, topology: Topology, *, name: str, on_fatal: FatalCallback
    ) -> None:
        self._broker = broker
        self.topology = topology
        self._name = name
        self._on_fatal = on_fatal
        self._consumers: list[_Consumer] = []
        self._publisher: AbstractRobustConnection | None = None
        self._consumer_conn: AbstractRobustConnection | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connected = asyncio.Event()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def add_consumer(self, stage: Stage, handler: Handler, prefetch: int) -> None:
        """Register a consumer; it starts once connected (call before ``start``)."""
        self._consumers.append(_Consumer(stage, handler, prefetch))

    async def start(self) -> None:
        """Connect in the background (retrying) and start the watchdog; returns at once."""
        self._spawn(self._connect_forever())
        self._spawn(self._watchdog())

    async def wait_connected(self, within: float) -> bool:
        """True once connected and declared; False if that takes longer than ``within`` s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within)
        return self._connected.is_set()

    @property
    def ready(self) -> bool:
        """Connected, topology declared, and every consumer channel open."""
        if not self._connected.is_set() or self._draining:
            return False
        connections = [self._publisher] + ([self._consumer_conn] if self._consumers else [])
        if any(c is None or c.is_closed or not c.connected.is_set() for c in connections):
            return False
        return all(c.channel is not None and not c.channel.is_closed for c in self._consumers)

    async def drain(self, grace: float) -> None:
        """Stop consuming; wait up to ``grace`` seconds for in-flight handlers."""
        self._draining = True
        for consumer in self._consumers:
            if consumer.queue is not None and consumer.tag is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.queue.cancel(consumer.tag), 5)
        pending = {t for c in self._consumers for t in c.inflight}
        if pending:
            log.info("waiting for %d in-flight messages", len(pending))
            await asyncio.wait(pending, timeout=grace)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in (self._consumer_conn, self._publisher):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)

    # -- publishing ------------------------------------------------------------------------
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm (see module docstring)."""
        message = aio_pika.Message(
            body,
            headers=dict(headers or {}),
            message_id=message_id,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await asyncio.wait_for(
                self._publish(exchange, routing_key, message), self._broker.publish_timeout
            )
        except TimeoutError:
            raise PublishError(
                f"no confirm from the broker within {self._broker.publish_timeout:g}s"
            ) from None
        except aio_pika.exceptions.DeliveryError as error:
            reason = "unroutable (returned)" if error.message is not None else "nacked"
            raise PublishError(f"broker refused the message: {reason}") from None
        except PublishError:
            raise
        except Exception as error:
            raise PublishError(f"publish failed: {type(error).__name__}: {error}") from None

    async def _publish(self, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        await self._connected.wait()
        target = self._exchanges[exchange]
        await target.publish(message, routing_key, mandatory=True)

    async def publish_stage(self, stage: Stage, body: bytes, envelope: Envelope) -> None:
        """Hand a message to the work queue of ``stage``."""
        await self.publish(
            self.topology.work_exchange,
            stage.value,
            body,
            message_id=envelope.message_id,
            headers={ENVELOPE_HEADER: envelope.to_header()},
        )

    async def publish_delayed(
        self, stage: Stage, tier: str, body: bytes, envelope: Envelope
    ) -> None:
        """Park a message in retry ``tier``; it returns to ``stage`` when the tier's TTL ends."""
        await self.publish(
            self.topology.delay_exchange,
            stage.value,
            body,
            message_id=envelope.message_id,
            headers={ENVELOPE_HEADER: envelope.to_header(), TIER_HEADER: tier},
        )

    async def publish_events(self, events: list[Event]) -> None:
        """Publish events concurrently; returns when all are confirmed."""
        await asyncio.gather(
            *(
                self.publish(
                    self.topology.work_exchange,
                    Stage.EVENTS.value,
                    event.to_json(),
                    message_id=event.event_id,
                    content_type="application/json",
                )
                for event in events
            )
        )

    # -- connecting ------------------------------------------------------------------------
    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._connect_once()
                return
            except TopologyMismatch as error:
                self._on_fatal(str(error))
                return
            except Exception as error:
                log.warning(
                    "broker not reachable (%s: %s); retrying in %.1fs",
                    type(error).__name__,
                    error,
                    delay,
                )
                await self._discard_connections()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _connect_once(self) -> None:
        url = self._broker.url
        self._publisher = await aio_pika.connect_robust(
            url, timeout=10, client_properties={"connection_name": f"{self._name}-publish"}
        )
        await declare(self._publisher, self.topology)
        channel = await self._publisher.channel(publisher_confirms=True, on_return_raises=True)
        for name in (self.topology.work_exchange, self.topology.delay_exchange):
            self._exchanges[name] = await channel.get_exchange(name, ensure=False)
        if self._consumers:
            self._consumer_conn = await aio_pika.connect_robust(
                url, timeout=10, client_properties={"connection_name": f"{self._name}-consume"}
            )
            for consumer in self._consumers:
                await self._start_consumer(self._consumer_conn, consumer)
        self._connected.set()
        log.info("connected to the broker", extra={"namespace": self.topology.namespace})

    async def _discard_connections(self) -> None:
        for conn in (self._publisher, self._consumer_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._publisher = self._consumer_conn = None

    async def _start_consumer(self, conn: AbstractRobustConnection, consumer: _Consumer) -> None:
        channel = await conn.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=consumer.prefetch)
        spec = next(
            q for q in self.topology.queues if q.name == self.topology.queue_name(consumer.stage)
        )
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            consumer.inflight.add(task)
            try:
                await self._run_handler(consumer.handler, message)
            finally:
                consumer.inflight.discard(task)

        consumer.channel, consumer.queue = channel, queue
        consumer.tag = await queue.consume(on_message)

    async def _watchdog(self) -> None:
        """Exit (via ``on_fatal``) when not ready for longer than ``watchdog_timeout``."""
        unready_for = 0.0
        step = min(1.0, self._broker.watchdog_timeout / 4)
        while True:
            await asyncio.sleep(step)
            unready_for = 0.0 if (self.ready or self._draining) else unready_for + step
            if unready_for >= self._broker.watchdog_timeout:
                self._on_fatal(
                    f"no broker connection or consumer for {self._broker.watchdog_timeout:g}s"
                )
                return

    async def _run_handler(self, handler: Handler, message: AbstractIncomingMessage) -> None:
        """Run ``handler`` and settle the message by its outcome (module docstring)."""
        try:
            await handler(_delivery_of(message))
        except Poison as error:
            log.error("parking poison message: %s", error, extra={"message_id": message.message_id})
            await self._announce_parked(message, str(error))
            await _settle(message.reject(requeue=False))
        except asyncio.CancelledError:
            await _settle(message.nack(requeue=True))
            raise
        except Exception:
            log.exception(
                "handler failed; message requeued", extra={"message_id": message.message_id}
            )
            await _settle(message.nack(requeue=True))
        else:
            await _settle(message.ack())

    async def _announce_parked(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Best effort ``parked`` event so the queue trail shows where the message went."""
        if message.routing_key == Stage.EVENTS.value:
            return  # a broken event must not produce another event about itself
        event = Event(
            kind=EventKind.PARKED,
            service=self._name,
            message_id=message.message_id or "unknown",
            reason=reason,
        )
        try:
            await self.publish_events([event])
        except PublishError as error:
            log.warning("could not announce parked message: %s", error)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _delivery_of(message: AbstractIncomingMessage) -> Delivery:
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
