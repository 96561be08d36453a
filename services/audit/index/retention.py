"""``[audit] retention`` in the background: forget messages whose last event is older.

``Retention(index, retention)`` purges once when started and then every
``interval_for(retention)`` seconds (a tenth of the retention, between 1 s and
1 h), each time everything whose last event is older than ``now - retention``.
A purge that fails (the database is unavailable) is logged and tried again at
the next round; it never stops the service. Trail files are not touched: they
rotate by size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from postline.audit.index import Index
from postline.models import utcnow

log = logging.getLogger("postline.audit")


def interval_for(retention: float) -> float:
    return min(3600.0, max(1.0, retention / 10))


class Retention:
    """The background purge task of one index."""

    def __init__(self, index: Index, retention: float) -> None:
        self.index = index
        self.retention = retention
        self.interval = interval_for(retention)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-retention")

    async def purge_once(self) -> int:
        before = utcnow() - timedelta(seconds=self.retention)
        purged = await self.index.purge(before)
        if purged:
            log.info("retention: forgot %d messages last seen before %s", purged, before)
        return purged

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Exception as error:  # the index may be unavailable now; try next round
                log.warning("retention purge failed (%s); next try in %.0fs", error, self.interval)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
