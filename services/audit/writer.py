"""Group-committing writer of the four trails: an event is durable before ``write`` returns.

``TrailWriter.write(event)`` formats the event's lines (one, or for an operator
delete/bounce also the failure-trail ones) and hands each to the sink of its
trail. Each sink runs one loop: it takes every line waiting,
writes them with one ``write`` + one ``fsync`` in a worker thread, then
releases all their writers at once. Lines that arrive while a batch is being
synced form the next batch, so throughput grows with load instead of paying
one fsync per event, and the four files commit independently (a slow fsync
on one does not hold the others). Nothing is released before its fsync.

A failed write is retried (backing off up to 30 s) rather than failed, so a
full or broken disk stalls the consumer - events wait in RabbitMQ and
``ready`` turns false - instead of sending good events to ``parked``.

Idempotency: ids of the last ``dedupe_window`` events written (in this
process) are remembered; a redelivered event with such an id, or one whose
twin is being written right now, is acknowledged without a second line.
The memory is lost on restart, so an event written just before a crash and
redelivered after it appears twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from pathlib import Path

from postline.audit import metrics
from postline.audit.lines import Trail, format_lines
from postline.audit.trailfile import TrailFile
from postline.models import Event

log = logging.getLogger("postline.audit")
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class RecentIds:
    """A bounded set of the most recently added ids (least recently added drop first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> None:
        if self.limit <= 0:
            return
        self._ids[item] = None
        self._ids.move_to_end(item)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


class _Sink:
    """The commit loop of one trail file."""

    def __init__(self, trail: Trail, file: TrailFile) -> None:
        self.trail = trail
        self.file = file
        self.healthy = True
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._committing: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"audit-{self.trail.name.lower()}")

    def submit(self, line: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, future))
        self._wake.set()
        return future

    async def stop(self) -> None:
        """Stop committing; writers still waiting get ``CancelledError`` (not written)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._committing + self._pending:
            future.cancel()
        self._pending, self._committing = [], []
        await asyncio.to_thread(self.file.close)  # waits for a write still in its thread

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._committing, self._pending = self._pending, []
            if self._committing:
                await self._commit(b"".join(line for line, _ in self._committing))
                for _, future in self._committing:
                    if not future.done():
                        future.set_result(None)
                self._committing = []

    async def _commit(self, data: bytes) -> None:
        delay = FIRST_BACKOFF
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self.file.append, data)
            except Exception as error:  # OSError mostly; anything else must not kill the loop
                self.healthy = False
                metrics.WRITE_ERRORS.labels(self.trail.value).inc()
                log.error("cannot write %s (%s); retrying in %.1fs", self.file.path, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            metrics.WRITE_SECONDS.labels(self.trail.value).observe(time.perf_counter() - started)
            self.healthy = True
            return


class TrailWriter:
    """The four trails under ``trail_dir``, written durably and without duplicates."""

    def __init__(
        self, trail_dir: Path, *, rotate_size: int, rotate_keep: int, dedupe_window: int
    ) -> None:
        self.trail_dir = trail_dir
        self._sinks = {
            trail: _Sink(trail, TrailFile(trail_dir / trail.value, rotate_size, rotate_keep))
            for trail in Trail
        }
        self._recent = RecentIds(dedupe_window)
        self._inflight: dict[str, asyncio.Future[None]] = {}

    @property
    def healthy(self) -> bool:
        return all(sink.healthy for sink in self._sinks.values())

    async def open(self) -> None:
        """Create the directory and open every file (raises ``OSError`` if it cannot)."""
        await asyncio.to_thread(self._open_files)
        for sink in self._sinks.values():
            sink.start()

    def _open_files(self) -> None:
        self.trail_dir.mkdir(parents=True, exist_ok=True)
        for sink in self._sinks.values():
            sink.file.open()

    async def write(self, event: Event) -> bool:
        """Return once ``event``'s line is fsynced: True, or False for a duplicate."""
        twin = self._inflight.get(event.event_id)
        if event.event_id in self._recent or twin is not None:
            if twin is not None:
                await asyncio.shield(twin)
            metrics.DUPLICATES.inc()
            return False
        lines = format_lines(event)  # operator delete/bounce: a failure line per recipient too
        futures = [self._sinks[trail].submit(line) for trail, line in lines]
        future = futures[0] if len(futures) == 1 else asyncio.ensure_future(_every(futures))
        self._inflight[event.event_id] = future
        future.add_done_callback(lambda done: self._settled(event, done))
        await asyncio.shield(future)
        return True

    def _settled(self, event: Event, future: asyncio.Future[None]) -> None:
        self._inflight.pop(event.event_id, None)
        if not future.cancelled() and future.exception() is None:
            self._recent.add(event.event_id)
            metrics.EVENTS.labels(event.kind.value).inc()

    async def close(self) -> None:
        for sink in self._sinks.values():
            await sink.stop()


async def _every(futures: list[asyncio.Future[None]]) -> None:
    await asyncio.gather(*futures)
