"""The message bus: confirmed publishing and acknowledged consuming on RabbitMQ.

Contract:

* ``publish`` returns only once RabbitMQ has confirmed the message (persistent,
  mandatory); otherwise ``PublishError`` (certainly not queued) or
  ``PublishUnconfirmed`` (sent, no confirm: it may be queued), as
  ``postline.publish`` decides. ``patient`` publishes (the workers') wait on
  for a late confirm; impatient ones (ingress) do not.
* ``add_consumer`` runs a handler per message (``postline.consumer``): returning
  acks; raising ``Poison`` parks the message (and publishes a ``parked``
  event); any other exception nacks with requeue, so ``x-delivery-limit``
  eventually parks a message that keeps failing. Handlers must await their own
  publishes before returning: that is "ack after hand-off".
* Publishing and consuming use separate connections (a resource alarm blocks
  publishers only), both to one broker node. With one ``[broker] url`` both
  reconnect to it on their own (aio-pika's robust connections; a load-balanced
  name reaches another node) and consumers are restored. With several (one per
  cluster node, tried in a random order) losing either connection moves the
  whole bus to the next node: both connections are dropped, publishes in flight
  fail into ``PublishError``/``PublishUnconfirmed``, and the topology is declared
  again (``declare`` adopts creation-only arguments) before consumers restart.
* A nacked publish raises ``PublishError`` as always, and the next publishes go
  out on a new channel (``_renew_channel``: a RabbitMQ 3.10 quorum-queue quirk).
* Every message carries the AMQP ``timestamp`` property (when it was published),
  so RabbitMQ can show how old the head of each queue is.
* ``drain`` stops taking deliveries and waits for in-flight handlers.
* ``publish_to_queue`` publishes through the default exchange (the held queue,
  the control stream); ``expiration`` is a message's own TTL in seconds.
  ``open_connection`` gives other readers (the control state) a robust
  connection of their own to the bus's node, closed with the bus (and on a
  fail-over, after which they open another).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from postline.consumer import Consumer, Delivery, Handler, Poison
from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind
from postline.publish import (
    LATE_CONFIRM_FACTOR,
    PublishError,
    PublishUnconfirmed,
    all_confirmed,
    confirmed,
)
from postline.settings import BrokerSettings
from postline.topology import TIER_HEADER, Stage, Topology, TopologyMismatch, declare

log = logging.getLogger("postline.bus")


FatalCallback = Callable[[str], None]
RENEW_EVERY = 5.0
"""Shortest time (s) between two new publishing channels opened after nacks."""
__all__ = [
    "Bus",
    "Delivery",
    "Handler",
    "Poison",
    "PublishError",
    "PublishUnconfirmed",
    "all_confirmed",
]


class Bus:
    """Connections, publishing and consumers of one service."""

    def __init__(
        self, broker: BrokerSettings, topology: Topology, *, name: str, on_fatal: FatalCallback
    ) -> None:
        self._broker = broker
        self.topology = topology
        self._nodes = random.sample(broker.urls, len(broker.urls))  # spread services over nodes
        self._node = 0
        self._failing_over = False
        self._renewed_at = 0.0
        self._name = name
        self._on_fatal = on_fatal
        self._consumers: list[Consumer] = []
        self._publisher: AbstractRobustConnection | None = None
        self._consumer_conn: AbstractRobustConnection | None = None
        self._connections: list[AbstractRobustConnection] = []
        self._exchanges: dict[str, AbstractExchange] = {}
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._connected = asyncio.Event()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def add_consumer(self, stage: Stage, handler: Handler, prefetch: int) -> None:
        """Register a consumer; it starts once connected (call before ``start``)."""
        self._consumers.append(Consumer(stage, handler, prefetch))

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
        return all(consumer.open for consumer in self._consumers)

    async def drain(self, grace: float) -> None:
        """Stop consuming; wait up to ``grace`` seconds for in-flight handlers."""
        self._draining = True
        for consumer in self._consumers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.cancel(), 5)
        pending = {t for c in self._consumers for t in c.inflight}
        if pending:
            log.info("waiting for %d in-flight messages", len(pending))
            await asyncio.wait(pending, timeout=grace)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._discard_connections()

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
        patient: bool = True,
        expiration: float | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm (see module docstring)."""
        message = aio_pika.Message(
            body,
            headers=dict(headers or {}),
            message_id=message_id,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC),
            expiration=expiration,
        )
        deadline = self._broker.publish_timeout
        sent = asyncio.Event()
        flight = self._publish(exchange, routing_key, message, sent)
        task = self._spawn(asyncio.wait_for(flight, deadline * LATE_CONFIRM_FACTOR))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen, if none awaits
        await confirmed(task, sent, deadline, patient=patient)

    async def _publish(
        self, exchange: str, routing_key: str, message: aio_pika.Message, sent: asyncio.Event
    ) -> None:
        await self._connected.wait()
        target, channel = self._exchanges[exchange], self._channel
        assert channel is not None
        await channel.get_underlay_channel()  # a robust channel waits here while reconnecting
        if not channel.is_closed:
            sent.set()  # from here on the broker may get it, whatever we hear back
        try:
            await target.publish(message, routing_key, mandatory=True)
        except aio_pika.exceptions.DeliveryError as error:
            if error.message is None:  # a nack (a return carries the message)
                self._spawn(self._renew_channel(channel))
            raise

    async def publish_stage(
        self, stage: Stage, body: bytes, envelope: Envelope, *, patient: bool = True
    ) -> None:
        """Hand a message to the work queue of ``stage``."""
        await self.publish(
            self.topology.work_exchange,
            stage.value,
            body,
            message_id=envelope.message_id,
            headers={ENVELOPE_HEADER: envelope.to_header()},
            patient=patient,
        )

    async def publish_delayed(
        self,
        stage: Stage,
        tier: str,
        body: bytes,
        envelope: Envelope,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Park a message in retry ``tier`` (with ``headers`` too); it returns to ``stage``
        when the tier's TTL ends."""
        await self.publish(
            self.topology.delay_exchange,
            stage.value,
            body,
            message_id=envelope.message_id,
            headers={**(headers or {}), ENVELOPE_HEADER: envelope.to_header(), TIER_HEADER: tier},
        )

    async def publish_to_queue(self, queue: str, body: bytes, **options: Any) -> None:
        """``publish`` (same keyword options) through the default exchange to ``queue``."""
        await self.publish("", queue, body, **options)

    async def publish_events(self, events: list[Event]) -> None:
        """Publish events concurrently; returns when all are confirmed (see ``all_confirmed``)."""
        await all_confirmed(
            [
                self.publish(
                    self.topology.work_exchange,
                    Stage.EVENTS.value,
                    event.to_json(),
                    message_id=event.event_id,
                    content_type="application/json",
                )
                for event in events
            ]
        )

    # -- connecting ------------------------------------------------------------------------
    async def _connect_forever(self) -> None:
        """Connect to one node after another until one takes the topology and consumers."""
        delay, tried = 0.5, 0
        while True:
            url = self._nodes[self._node]
            try:
                await self._connect_once(url)
                return
            except TopologyMismatch as error:
                self._on_fatal(str(error))
                return
            except Exception as error:
                log.warning(
                    "broker node %s not usable (%s: %s)",
                    _safe(url),
                    type(error).__name__,
                    error,
                )
                await self._discard_connections()
                self._node = (self._node + 1) % len(self._nodes)
                tried += 1
                if tried % len(self._nodes) == 0:  # every node failed once: back off
                    log.warning("no broker node usable; retrying in %.1fs", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

    async def _connect_once(self, url: str) -> None:
        self._publisher = await self._open("publish", url)
        self.topology = await declare(self._publisher, self.topology)
        channel = await self._publisher.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        for name in (self.topology.work_exchange, self.topology.delay_exchange, ""):
            self._exchanges[name] = await channel.get_exchange(name, ensure=False)
        if self._consumers:
            self._consumer_conn = await self._open("consume", url)
            for consumer in self._consumers:
                name = self.topology.queue_name(consumer.stage)
                spec = next(q for q in self.topology.queues if q.name == name)
                await consumer.start(self._consumer_conn, spec, self._announce_parked)
        self._connected.set()
        log.info(
            "connected to the broker",
            extra={"namespace": self.topology.namespace, "broker": _safe(url)},
        )

    async def open_connection(self, role: str) -> AbstractRobustConnection:
        """A new robust connection to the bus's node, once connected (module docstring)."""
        await self._connected.wait()
        return await self._open(role, self._nodes[self._node])

    async def _open(self, role: str, url: str) -> AbstractRobustConnection:
        """A robust connection, remembered *before* it connects.

        ``connect()`` starts a reconnecting task of its own: if we are cancelled
        while it runs (a service stopping during start-up), the connection must
        still be closable, or it would reconnect forever in a dying process.
        With several nodes, its loss moves the bus to another node (``_lost``).
        """
        connection = aio_pika.RobustConnection(
            aio_pika.connection.make_url(url),
            client_properties={"connection_name": f"{self._name}-{role}"},
        )
        self._connections.append(connection)
        if len(self._nodes) > 1:
            connection.close_callbacks.add(self._lost)
        await connection.connect(timeout=10)
        return connection

    def _lost(self, connection: object, error: BaseException | None) -> None:
        """A connection closed: unless we closed it, move the bus to the next node."""
        if connection not in self._connections or self._failing_over or self._draining:
            return
        log.warning("lost the broker node %s (%s)", _safe(self._nodes[self._node]), error)
        self._failing_over = True
        self._connected.clear()
        self._spawn(self._fail_over())

    async def _fail_over(self) -> None:
        try:
            await self._discard_connections()
            self._node = (self._node + 1) % len(self._nodes)
            await self._connect_forever()
        finally:
            self._failing_over = False

    async def _renew_channel(self, nacked: aio_pika.abc.AbstractChannel) -> None:
        """Publish on a fresh channel after ``nacked`` nacked (at most every RENEW_EVERY s).

        RabbitMQ 3.10 can leave a channel that published to a quorum queue during
        a leader election nacking every later publish to it: a new channel starts
        afresh. The old one is closed once its last confirms are due.
        """
        now = asyncio.get_running_loop().time()
        if self._channel is not nacked or self._publisher is None or now < self._renewed_at:
            return
        self._renewed_at = now + RENEW_EVERY
        try:
            channel = await self._publisher.channel(publisher_confirms=True, on_return_raises=True)
            exchanges = {n: await channel.get_exchange(n, ensure=False) for n in self._exchanges}
        except Exception as error:  # the connection is going: reconnecting makes a new one
            log.warning("no new publishing channel (%s)", error)
            return
        if self._channel is nacked:
            self._channel, self._exchanges = channel, exchanges
            log.info("publishing on a new channel after a nack")
        await asyncio.sleep(self._broker.publish_timeout * LATE_CONFIRM_FACTOR)
        with contextlib.suppress(Exception):
            await nacked.close()

    async def _discard_connections(self) -> None:
        connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        self._publisher = self._consumer_conn = None

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

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _safe(url: str) -> str:
    """``url`` without its password, for logs."""
    parsed = aio_pika.connection.make_url(url)
    return str(parsed.with_password("***") if parsed.password else parsed)
