"""A queue-consuming service: one bus, one consumer, one handler.

Filter, delivery and audit are each a ``Worker`` around their own handler; the
worker owns the bus wiring and the lifecycle hooks (start, ready, drain,
close), so the services only say what to do with one message.
"""

from __future__ import annotations

from postline.bus import Bus, Handler
from postline.context import ServiceContext
from postline.lifecycle import Supervisor
from postline.topology import Stage


class Worker:
    """Consumes ``stage`` with ``handler``, at most ``prefetch`` messages at once."""

    def __init__(
        self,
        name: str,
        context: ServiceContext,
        supervisor: Supervisor,
        stage: Stage,
        prefetch: int,
    ) -> None:
        self.name = name
        self.bus = Bus(
            context.broker,
            context.topology,
            name=f"postline-{name}",
            on_fatal=supervisor.fail,
        )
        self._stage = stage
        self._prefetch = prefetch
        self._handler: Handler | None = None

    def set_handler(self, handler: Handler) -> None:
        """Attach the per-message handler (before ``start``)."""
        self._handler = handler

    async def start(self) -> None:
        if self._handler is None:
            raise RuntimeError(f"{self.name}: no handler set")
        self.bus.add_consumer(self._stage, self._handler, self._prefetch)
        await self.bus.start()

    @property
    def ready(self) -> bool:
        return self.bus.ready

    async def drain(self, grace: float) -> None:
        await self.bus.drain(grace)

    async def close(self) -> None:
        await self.bus.close()
