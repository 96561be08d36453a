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
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from pydantic import ValidationError

from postline.audit.index import open_index
from postline.audit.index.batch import IndexWriter
from postline.audit.index.retention import Retention
from postline.audit.settings import AuditSettings
from postline.audit.writer import TrailWriter
from postline.bus import Delivery, Poison
from postline.context import ServiceContext
from postline.lifecycle import Service, Supervisor
from postline.models import Event
from postline.topology import Stage
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
            self.api = _api_server(self.section, self.index)
            if self.api is not None:
                await self.api.start()
        await self.worker.start()

    @property
    def ready(self) -> bool:
        return self.worker.ready and self.writer.healthy and self.index_writer.healthy

    async def drain(self, grace: float) -> None:
        await self.worker.drain(grace)

    async def close(self) -> None:
        await self.worker.close()
        if self.api is not None:
            await self.api.close()
        await self.retention.stop()
        await self.index_writer.stop()
        await self.index.close()
        await self.writer.close()


def _api_server(section: AuditSettings, index: Any) -> Any:
    """``ApiServer(section, index)``, or None (with a warning) where the API is not built."""
    try:
        module = importlib.import_module("postline.audit.api")
    except ModuleNotFoundError as error:
        if error.name != "postline.audit.api":
            raise
        log.warning("the query API is not part of this build; api_listen is ignored")
        return None
    return module.ApiServer(section, index)


def _first_line(error: ValueError) -> str:
    """Where and why the body is invalid, without echoing its content."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}"[:200]
    return type(error).__name__


def build(section: AuditSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    return AuditService(section, context, supervisor)
