"""The filter service against the real RabbitMQ: a ``Rig`` per test, in its own namespace.

``rig_factory(consume_deliver=True, broker=..., delivery=..., **filter_section)``
starts the filter service (``postline.filter.main.build``) and a probe bus that
publishes to ``submit`` and records what reaches ``deliver`` and ``events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from postline.app.settings import Settings, context_for, topology_for
from postline.bus import Bus, Delivery
from postline.filter.main import build
from postline.lifecycle import Service, Supervisor
from postline.models import Event, EventKind
from postline.topology import Stage
from tests.support.broker import queue_depth, wait_until


@dataclass
class Rig:
    """A running filter service plus a bus that publishes to submit and reads deliver/events."""

    settings: Settings
    probe: Bus
    service: Service
    delivered: list[Delivery] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    stopped: bool = False

    async def stop_service(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.service.drain(5)
            await self.service.close()

    def of_kind(self, kind: EventKind) -> list[Event]:
        return [event for event in self.events if event.kind is kind]

    async def depth(self, queue: Stage | str) -> int:
        """Messages ready in the queue of ``queue`` (a stage, or a queue name)."""
        topology = topology_for(self.settings)
        name = topology.queue_name(queue) if isinstance(queue, Stage) else queue
        return await queue_depth(self.settings.broker.url, name)


@pytest.fixture
async def rig_factory(
    broker_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[Rig] = []

    async def make(
        consume_deliver: bool = True,
        broker: dict[str, Any] | None = None,
        delivery: dict[str, Any] | None = None,
        **filter_section: object,
    ) -> Rig:
        settings = broker_settings(
            filter={"hostname": "relay.test", **filter_section},
            broker={"delivery_limit": 1, **(broker or {})},
            delivery=delivery or {},
        )
        probe = Bus(settings.broker, topology_for(settings), name="probe", on_fatal=print)
        service = build(settings.filter, context_for(settings), Supervisor())
        rig = Rig(settings, probe, service)

        async def on_deliver(delivery: Delivery) -> None:
            rig.delivered.append(delivery)

        async def on_event(delivery: Delivery) -> None:
            rig.events.append(Event.from_json(delivery.body))

        if consume_deliver:
            probe.add_consumer(Stage.DELIVER, on_deliver, prefetch=10)
        probe.add_consumer(Stage.EVENTS, on_event, prefetch=10)
        await probe.start()
        assert await probe.wait_connected(10)
        await service.start()
        made.append(rig)
        await wait_until(lambda: service.ready, 10, "the filter service to be ready")
        return rig

    yield make
    for rig in made:
        await rig.stop_service()
        await rig.probe.drain(1)
        await rig.probe.close()
