"""Audit service wiring: consume ``events`` into the trail files (``postline audit``).

``AuditService`` opens the trails (an unwritable ``trail_dir`` stops the
start), then consumes ``events`` with ``[audit] concurrency`` in flight. Each
message is acked only after its line is fsynced (``TrailWriter``); a body
that is not an ``Event`` is ``Poison`` and goes to ``parked``. ``ready`` is
false while a trail cannot be written.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

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
    """Events queue -> trail files."""

    name = "audit"

    def __init__(
        self, section: AuditSettings, context: ServiceContext, supervisor: Supervisor
    ) -> None:
        self.writer = TrailWriter(
            section.trail_dir,
            rotate_size=section.rotate_size,
            rotate_keep=section.rotate_keep,
            dedupe_window=section.dedupe_window,
        )
        self.worker = Worker("audit", context, supervisor, Stage.EVENTS, section.concurrency)
        self.worker.set_handler(self.handle)

    async def handle(self, delivery: Delivery) -> None:
        try:
            event = Event.from_json(delivery.body)
        except ValueError as error:
            raise Poison(f"event body is not a valid event: {_first_line(error)}") from None
        written = await self.writer.write(event)
        if not written:
            log.info(
                "duplicate event %s dropped", event.event_id, extra={"message_id": event.message_id}
            )

    async def start(self) -> None:
        await self.writer.open()
        await self.worker.start()

    @property
    def ready(self) -> bool:
        return self.worker.ready and self.writer.healthy

    async def drain(self, grace: float) -> None:
        await self.worker.drain(grace)

    async def close(self) -> None:
        await self.worker.close()
        await self.writer.close()


def _first_line(error: ValueError) -> str:
    """Where and why the body is invalid, without echoing its content."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}"[:200]
    return type(error).__name__


def build(section: AuditSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    return AuditService(section, context, supervisor)
