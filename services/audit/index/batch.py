"""Group commit into the index: an event is committed before ``IndexWriter.write`` returns.

Like the trail sinks (``postline.audit.writer``): handlers hand their event to
one commit loop; the loop takes every event waiting (up to ``max_batch``),
writes them in one index transaction, then releases all their handlers at
once. Events that arrive while a transaction runs form the next one, so the
number of transactions grows with time, not with load.

An ``IndexUnavailable`` (database down, locked, disk full) is retried with
back-off up to 30 s and turns ``healthy`` false meanwhile: events wait
unacknowledged in RabbitMQ instead of being parked. Any other error is about
the events: the batch is written again one event at a time, so only the event
that fails gets the error (its handler's message is returned to the queue,
and the queue's delivery limit parks it if it keeps failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from postline.audit import metrics
from postline.audit.index import Index, IndexUnavailable
from postline.models import Event

log = logging.getLogger("postline.audit")
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_BATCH = 1000

_Pending = tuple[Event, "asyncio.Future[None]"]


class IndexWriter:
    """The commit loop in front of one ``Index`` (module docstring)."""

    def __init__(self, index: Index, max_batch: int = MAX_BATCH) -> None:
        self.index = index
        self.max_batch = max_batch
        self.healthy = True
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-index")

    async def write(self, event: Event) -> None:
        """Return once ``event`` is committed (or was in the index already)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._wake.set()
        await asyncio.shield(future)

    async def stop(self) -> None:
        """Stop committing; writers still waiting get ``CancelledError`` (not committed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            future.cancel()
        self._pending = []

    async def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    await self._commit(batch)
                    batch = []
        finally:
            for _, future in batch:  # cancelled mid-commit: those handlers must not hang
                future.cancel()

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        try:
            await self._write([event for event, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error)
                return
            for one in batch:  # find the event at fault: the others are committed alone
                await self._commit([one])
            return
        for _, future in batch:
            _settle(future, None)

    async def _write(self, events: list[Event]) -> None:
        """One transaction, retried while the index is unavailable."""
        delay = FIRST_BACKOFF
        while True:
            started = time.perf_counter()
            try:
                new = await self.index.write(events)
            except IndexUnavailable as error:
                self.healthy = False
                metrics.INDEX_WRITE_ERRORS.inc()
                log.error("cannot write the audit index (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            except Exception as error:
                metrics.INDEX_WRITE_ERRORS.inc()
                why = f"{type(error).__name__}: {error}"[:200]
                log.error("audit index write of %d events failed: %s", len(events), why)
                raise
            metrics.INDEX_WRITE_SECONDS.observe(time.perf_counter() - started)
            metrics.INDEX_EVENTS.inc(new)
            self.healthy = True
            return


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
