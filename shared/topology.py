"""The whole RabbitMQ topology, declared in one place.

Names (``<ns>`` is ``[broker] namespace``):

* ``<ns>.work`` (direct): routes ``submit``, ``deliver`` and ``events`` to the
  quorum work queues of the same names. Work queues have ``x-delivery-limit``
  and dead-letter (at-least-once) to ``<ns>.parked``; they refuse publishes
  past ``max_queue_length`` so overload reaches the publisher as a nack.
* ``<ns>.delay`` (headers): one quorum queue per retry tier,
  ``<ns>.retry.<tier>``, bound on header ``postline-tier = <tier>``. Each has a
  fixed ``x-message-ttl`` and dead-letters back to ``<ns>.work`` under the
  message's original routing key, so one set of tiers serves every stage.
* ``<ns>.parked`` (fanout) -> quorum queue ``<ns>.parked``: poison messages,
  kept for operators, never dropped; and -> quorum queue ``<ns>.parked.log``,
  a copy of every parked message, from which audit makes ``parked`` events
  (messages parked by ``x-delivery-limit`` included). Moving a message back
  into ``<ns>.parked`` goes through the default exchange, so the log gets no
  second copy.
* ``<ns>.held`` (quorum queue, reached through the default exchange): mail an
  operator held (``postline queue hold``). It has no consumer; each message's
  ``expiration`` is its remaining lifetime, after which it dead-letters to
  ``<ns>.work`` under ``deliver`` (where delivery expires it).
* ``<ns>.control`` (a stream, reached through the default exchange): operator
  actions and done markers (``postline.control``), read from the start by every
  delivery replica; records older than ``control_max_age`` are dropped.

Every quorum queue is created with ``x-quorum-initial-group-size`` and the
stream with ``x-initial-cluster-size`` (``[broker] quorum_size``), arguments
that matter only at creation: ``declare`` adopts an existing queue's value
instead of failing (older queues have none).

``build_topology`` is pure; ``declare`` applies it idempotently, returns the
arguments in force, and turns any other argument mismatch with an existing
queue into ``TopologyMismatch`` (docs/operations.md says how to change one).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection

from postline.values import format_duration

log = logging.getLogger("postline.topology")

TIER_HEADER = "postline-tier"
INITIAL_GROUP_SIZE = "x-quorum-initial-group-size"
INITIAL_CLUSTER_SIZE = "x-initial-cluster-size"
"""The stream's counterpart of ``INITIAL_GROUP_SIZE``."""
CONTROL_MAX_AGE = "14D"
"""Default retention of the control stream (RabbitMQ ``x-max-age`` syntax)."""
CREATION_ONLY = frozenset({INITIAL_GROUP_SIZE, INITIAL_CLUSTER_SIZE})
"""Queue arguments that matter only when RabbitMQ creates the queue. RabbitMQ still
compares them on a redeclare, so an existing queue's value is adopted, not fought."""
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<key>[^']+)' .* but current is "
    r"(?:none|'(?P<plain>-?\d+)'|the value '(?P<typed>-?\d+)' of type '\w+')"
)


class Stage(StrEnum):
    """Work queues, named by the routing key that reaches them."""

    SUBMIT = "submit"
    DELIVER = "deliver"
    EVENTS = "events"


class TopologyMismatch(RuntimeError):
    """An existing exchange or queue was declared with other arguments."""


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    """Every exchange, queue and binding of one namespace."""

    namespace: str
    tiers: tuple[str, ...]
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]

    @property
    def work_exchange(self) -> str:
        return f"{self.namespace}.work"

    @property
    def delay_exchange(self) -> str:
        return f"{self.namespace}.delay"

    @property
    def parked_queue(self) -> str:
        return f"{self.namespace}.parked"

    @property
    def parked_log_queue(self) -> str:
        """A copy of every parked message, for audit's ``parked`` events."""
        return f"{self.namespace}.parked.log"

    @property
    def held_queue(self) -> str:
        """Held mail; dead-letters to ``<ns>.work``/``deliver`` when a message expires."""
        return f"{self.namespace}.held"

    @property
    def control_stream(self) -> str:
        """The stream of operator actions and done markers (``postline.control``)."""
        return f"{self.namespace}.control"

    def queue_name(self, stage: Stage) -> str:
        return f"{self.namespace}.{stage.value}"

    def tier_queue(self, tier: str) -> str:
        return f"{self.namespace}.retry.{tier}"


def tier_name(delay: float) -> str:
    """Name of the tier that waits ``delay`` seconds: 300 -> ``"5m"``."""
    return format_duration(delay)


def build_topology(
    namespace: str,
    retry_delays: Iterable[float],
    *,
    delivery_limit: int,
    max_queue_length: int,
    quorum_size: int = 3,
    control_max_age: str = CONTROL_MAX_AGE,
) -> Topology:
    """The topology for ``namespace`` with one tier per distinct delay.

    Every queue is a quorum queue of ``quorum_size`` initial members (RabbitMQ
    caps that at the cluster's size), except the control stream (as many
    members, records kept ``control_max_age``).
    """
    delays = sorted(set(retry_delays))
    tiers = tuple(tier_name(delay) for delay in delays)
    names = Topology(namespace, tiers, (), (), ())  # the naming rules, before the specs
    work, delay_x, parked = names.work_exchange, names.delay_exchange, names.parked_queue
    exchanges = (
        ExchangeSpec(work, "direct"),
        ExchangeSpec(delay_x, "headers"),
        ExchangeSpec(parked, "fanout"),
    )
    quorum: dict[str, Any] = {"x-queue-type": "quorum", INITIAL_GROUP_SIZE: quorum_size}
    safe_dead_letter = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    queues = [
        QueueSpec(
            names.queue_name(stage),
            {
                **quorum,
                **safe_dead_letter,
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": parked,
                **({} if stage is Stage.EVENTS else {"x-max-length": max_queue_length}),
            },
        )
        for stage in Stage
    ]
    bindings = [BindingSpec(names.queue_name(s), work, s.value) for s in Stage]
    for tier, delay in zip(tiers, delays, strict=True):
        queue = names.tier_queue(tier)
        queues.append(
            QueueSpec(
                queue,
                {
                    **quorum,
                    **safe_dead_letter,
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": work,
                },
            )
        )
        bindings.append(BindingSpec(queue, delay_x, "", {"x-match": "all", TIER_HEADER: tier}))
    queues.append(QueueSpec(parked, dict(quorum)))
    bindings.append(BindingSpec(parked, parked))
    queues.append(QueueSpec(names.parked_log_queue, dict(quorum)))
    bindings.append(BindingSpec(names.parked_log_queue, parked))
    held = {"x-dead-letter-exchange": work, "x-dead-letter-routing-key": Stage.DELIVER.value}
    queues.append(QueueSpec(names.held_queue, {**quorum, **safe_dead_letter, **held}))
    stream = {"x-queue-type": "stream", INITIAL_CLUSTER_SIZE: quorum_size}
    queues.append(QueueSpec(names.control_stream, {**stream, "x-max-age": control_max_age}))
    return Topology(namespace, tiers, exchanges, tuple(queues), tuple(bindings))


async def declare(connection: AbstractConnection, topology: Topology) -> Topology:
    """Declare everything (idempotent); return ``topology`` with the arguments in force.

    A queue that exists with another value of a ``CREATION_ONLY`` argument keeps
    it (the value is adopted, logged, and the rest still checked); any other
    conflicting argument raises ``TopologyMismatch``. Uses its own channels,
    because a failed declaration closes the channel.
    """
    channel: AbstractChannel = await connection.channel(publisher_confirms=False)
    queues: list[QueueSpec] = []
    try:
        for spec in topology.exchanges:
            await channel.declare_exchange(spec.name, spec.type, durable=True)
        for queue_spec in topology.queues:
            in_force, channel = await _declare_queue(connection, channel, queue_spec)
            queues.append(in_force)
        for binding in topology.bindings:
            queue = await channel.get_queue(binding.queue, ensure=False)
            await queue.bind(binding.exchange, binding.routing_key, arguments=binding.arguments)
    except aio_pika.exceptions.ChannelPreconditionFailed as error:
        raise TopologyMismatch(
            f"RabbitMQ refused the topology of namespace {topology.namespace!r}: {error}. "
            "An existing queue has other arguments; see docs/operations.md (topology "
            "changes): move to a new namespace, or delete it."
        ) from None
    finally:
        if not channel.is_closed:
            await channel.close()
    return replace(topology, queues=tuple(queues))


async def _declare_queue(
    connection: AbstractConnection, channel: AbstractChannel, spec: QueueSpec
) -> tuple[QueueSpec, AbstractChannel]:
    """Declare one queue, adopting an existing queue's creation-only arguments."""
    arguments = dict(spec.arguments)
    while True:
        try:
            await channel.declare_queue(spec.name, durable=True, arguments=arguments)
            return QueueSpec(spec.name, arguments), channel
        except aio_pika.exceptions.ChannelPreconditionFailed as error:
            adopted = adopt_existing(arguments, str(error))
            if adopted is None:
                raise
            key, arguments = adopted
            log.info("queue %s exists: keeping the %s it was created with", spec.name, key)
            channel = await connection.channel(publisher_confirms=False)


def adopt_existing(arguments: dict[str, Any], refusal: str) -> tuple[str, dict[str, Any]] | None:
    """(key, ``arguments`` with the existing queue's value of ``key``) when RabbitMQ's
    ``PRECONDITION_FAILED`` text names a creation-only argument; ``None`` otherwise."""
    found = _INEQUIVALENT.search(refusal)
    if found is None or found["key"] not in CREATION_ONLY:
        return None
    adopted = {k: v for k, v in arguments.items() if k != found["key"]}
    current = found["plain"] or found["typed"]
    if current is not None:
        adopted[found["key"]] = int(current)
    return (found["key"], adopted) if adopted != arguments else None


async def delete(connection: AbstractConnection, topology: Topology) -> None:
    """Delete every queue and exchange of ``topology``, messages included (tests, benchmarks)."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        for queue in topology.queues:
            await channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            await channel.exchange_delete(exchange.name)
    finally:
        if not channel.is_closed:
            await channel.close()


def to_definitions(topology: Topology, vhost: str = "/") -> dict[str, Any]:
    """RabbitMQ definitions JSON (``rabbitmqctl import_definitions``) for ``deploy/``."""
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in topology.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": q.arguments,
            }
            for q in topology.queues
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": vhost,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": b.arguments,
            }
            for b in topology.bindings
        ],
    }


def describe(topology: Topology) -> str:
    """Human-readable listing for ``postline topology show``."""
    lines = [f"namespace {topology.namespace}", "exchanges:"]
    lines += [f"  {e.name} ({e.type})" for e in topology.exchanges]
    lines.append("queues:")
    for q in topology.queues:
        args = ", ".join(f"{k}={v}" for k, v in sorted(q.arguments.items()))
        lines.append(f"  {q.name}  [{args}]")
    lines.append("bindings:")
    for b in topology.bindings:
        how = b.routing_key or ", ".join(
            f"{k}={v}" for k, v in b.arguments.items() if k != "x-match"
        )
        lines.append(f"  {b.exchange} -> {b.queue}" + (f"  ({how})" if how else ""))
    return "\n".join(lines)
