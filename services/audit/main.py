"""Audit service wiring: consume ``events`` into the trails and the index (``postline audit``).

``AuditService`` opens the trails (an unwritable ``trail_dir`` stops the
start) and the index (``open_index``: a database that cannot be reached, or
whose schema is newer than this code, stops the start with one line), starts
the background retention purge and, when ``[audit] api_listen`` is set, the
query API and console (``postline.audit.api.ApiServer``), then consumes
``events`` with ``[audit] concurrency`` in flight. Each event goes to its
trail (``TrailWriter``) and to the index (``IndexWriter``) at the same time,
and is acked only after its line is fsynced and its index transaction has
committed. A body that is not an ``Event`` is ``Poison`` and goes to
``parked``. ``ready`` is false while a trail or the index cannot be written.

Beside the events, on connections of their own (``BrokerLinks``): the control
stream (a ``ControlState``: the flusher's done markers) and the parked log
(``ParkedLog``: ``parked`` events for what the broker parked). The API's queue
routes get a ``QueueActions`` (operator actions, the flusher; docs/queue.md).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from pydantic import ValidationError

from postline.audit.flush import Flusher
from postline.audit.flushplan import Done
from postline.audit.index import Index, open_index
from postline.audit.index.batch import IndexWriter
from postline.audit.index.retention import Retention
from postline.audit.links import BrokerLinks
from postline.audit.parkedlog import ParkedLog
from postline.audit.queueactions import QueueActions
from postline.audit.settings import AuditSettings
from postline.audit.writer import TrailWriter
from postline.bus import Bus, Delivery, Poison
from postline.context import ServiceContext
from postline.control import ControlState, DoneMarker, OperatorAction, publish_control
from postline.lifecycle import Service, Supervisor
from postline.models import Event
from postline.topology import Stage, Topology
from postline.worker import Worker

log = logging.getLogger("postline.audit")


class AuditService:
    """Events queue -> trail files and message index; the query API beside them."""

    name = "audit"

    def __init__(
        self, section: AuditSettings, context: ServiceContext, supervisor: Supervisor
    ) -> None:
        self.section = section
        self.writer = TrailWriter(
            section.trail_dir,
            rotate_size=section.rotate_size,
            rotate_keep=section.rotate_keep,
            dedupe_window=section.dedupe_window,
        )
        self.index = open_index(section)
        self.index_writer = IndexWriter(self.index)
        self.retention = Retention(self.index, section.retention)
        self.api: Any = None
        self.worker = Worker("audit", context, supervisor, Stage.EVENTS, section.concurrency)
        self.worker.set_handler(self.handle)
        self.links, self.queue = _queue_parts(context.topology, self.worker.bus, self.index)

    async def handle(self, delivery: Delivery) -> None:
        try:
            event = Event.from_json(delivery.body)
        except ValueError as error:
            raise Poison(f"event body is not a valid event: {_first_line(error)}") from None
        written, _ = await asyncio.gather(self.writer.write(event), self.index_writer.write(event))
        if not written:
            log.info(
                "duplicate event %s dropped", event.event_id, extra={"message_id": event.message_id}
            )

    async def start(self) -> None:
        await self.writer.open()
        await self.index.open()
        self.index_writer.start()
        self.retention.start()
        if self.section.api_listen is not None:
            self.api = _api_server(self.section, self.index, self.queue)
            if self.api is not None:
                await self.api.start()
        await self.worker.start()
        self.links.start()
        self.queue.start()

    @property
    def ready(self) -> bool:
        healthy = self.writer.healthy and self.index_writer.healthy
        return self.worker.ready and self.links.ready and healthy

    async def drain(self, grace: float) -> None:
        await self.worker.drain(grace)

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()
        await self.queue.close()
        await self.links.close()
        await self.worker.close()
        await self.retention.stop()
        await self.index_writer.stop()
        await self.index.close()
        await self.writer.close()


def _queue_parts(topology: Topology, bus: Bus, index: Index) -> tuple[BrokerLinks, QueueActions]:
    """The control state and parked log (``BrokerLinks``) and the queue actions, wired."""
    state = ControlState(topology.control_stream)
    parked_log = ParkedLog(topology.parked_log_queue, topology.namespace, bus.publish_events)

    async def publish_done(done: Done) -> None:
        await publish_control(
            bus, DoneMarker(done.message_id, done.attempt, done.request_id, done.copy)
        )

    async def publish_action(record: OperatorAction) -> None:
        await publish_control(bus, record)

    flusher = Flusher(
        topology,
        bus,
        is_done=state.is_done,
        publish_done=publish_done,
        publish_events=bus.publish_events,
    )
    actions = QueueActions(
        index,
        topology,
        flusher,
        publish_action=publish_action,
        state=state,
        connect=lambda: bus.open_connection("audit-flush"),
    )
    return BrokerLinks(bus, state, parked_log), actions


def _api_server(section: AuditSettings, index: Any, queue: QueueActions) -> Any:
    """``ApiServer(section, index, queue)``, or None (with a warning) where it is not built."""
    try:
        module = importlib.import_module("postline.audit.api")
    except ModuleNotFoundError as error:
        if error.name != "postline.audit.api":
            raise
        log.warning("the query API is not part of this build; api_listen is ignored")
        return None
    return module.ApiServer(section, index, queue)


def _first_line(error: ValueError) -> str:
    """Where and why the body is invalid, without echoing its content."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}"[:200]
    return type(error).__name__


def build(section: AuditSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    return AuditService(section, context, supervisor)
