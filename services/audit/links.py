"""What audit reads from the broker besides ``events``: the control stream and the parked log.

``BrokerLinks(bus, state, parked_log)`` opens a connection of its own from the
bus (``Bus.open_connection``: the node the bus is on) once the bus is
connected, and starts on it the ``ControlState`` (the flusher's done markers)
and the ``ParkedLog`` consumer. Robust channels restore both after a
reconnect; when the connection is closed for good (the bus moved to another
node), a new one is opened and both are started again. ``ready`` is true
while both are attached. Nothing here blocks the service's start: the bus
connects in the background, and so do the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from postline.audit.parkedlog import ParkedLog
from postline.bus import Bus
from postline.control import ControlState

log = logging.getLogger("postline.audit")

RETRY_DELAY = 2.0


class BrokerLinks:
    """The control state and the parked-log consumer on a connection of their own."""

    def __init__(self, bus: Bus, state: ControlState, parked_log: ParkedLog) -> None:
        self._bus = bus
        self.state = state
        self.parked_log = parked_log
        self._task: asyncio.Task[None] | None = None
        self._attached = False

    @property
    def ready(self) -> bool:
        return self._attached and self.parked_log.open

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-links")

    async def _run(self) -> None:
        while True:
            connection: Any = None
            try:
                connection = await self._bus.open_connection("audit-links")
                closed = asyncio.Event()
                connection.close_callbacks.add(_setter(closed))
                await self.state.start(connection)
                await self.parked_log.start(connection)
                self._attached = True
                log.info("reading the control stream and the parked log")
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("control stream / parked log not attached (%s); retrying", error)
            finally:
                self._attached = False
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
            await asyncio.sleep(RETRY_DELAY)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.parked_log.close()
        await self.state.close()


def _setter(event: asyncio.Event) -> Any:
    def closed(*_: object) -> None:
        event.set()

    return closed
