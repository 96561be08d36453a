"""Operator actions on waiting mail (``POST /v1/queue/{action}``): resolve, record, flush.

``QueueActions.act(selection, actor)``:

1. resolves the messages from the index (``queuetargets.resolve``);
2. a dry run (or nothing matched) stops there: the answer says what matched;
3. appends one ``OperatorAction`` to the control stream and waits for its
   confirm (``PublishError`` -> the API answers ``503``, nothing was done);
   every delivery replica now applies it to these messages whenever they
   come back to ``deliver``;
4. remembers the request (``REMEMBER`` seconds, for ``status``) and queues
   the flushes it needs in the background: the queues of the states its
   messages are in (``deferred``: every retry tier, ``held``, ``parked``), so a
   retry or release happens within seconds and a delete, bounce or hold is
   settled now rather than when a tier's TTL ends.

The flush worker takes every queued request at once, walks each queue they
need once for all of them (``Flusher``), and walks again, once, after
``STRAGGLER_DELAY`` for the requests whose messages were not found anywhere
(in flight in delivery during the first walk, back in a tier since). A walk
that fails (broker away) is tried again, backing off, up to ``FLUSH_TRIES``
times; the control record stays in force whatever happens to the flush.

``status(request_id)`` is ``queuetargets.request_status`` of a remembered
request, or None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aio_pika.abc import AbstractConnection

from postline.audit.flush import Flusher, Report
from postline.audit.flushplan import Request, Source, SourceKind, sources
from postline.audit.index import Index
from postline.audit.queueparams import Selection
from postline.audit.queuetargets import Resolved, request_status, resolve
from postline.control import OperatorAction, new_request_id
from postline.models import utcnow
from postline.topology import Topology

log = logging.getLogger("postline.audit.queue")

REMEMBER = 6 * 3600.0
MAX_REMEMBERED = 10_000
STRAGGLER_DELAY = 5.0
FLUSH_TRIES = 5
SYNC_TIMEOUT = 10.0
SOURCES_OF_STATE = {
    "deferred": SourceKind.TIER,
    "held": SourceKind.HELD,
    "parked": SourceKind.PARKED,
}
Connect = Callable[[], Awaitable[AbstractConnection]]
PublishAction = Callable[[OperatorAction], Awaitable[None]]


class Synced(Protocol):
    async def wait_synced(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class Remembered:
    action: str
    ids: tuple[str, ...]
    at: float  # time.monotonic()


@dataclass
class _Job:
    request: Request
    kinds: set[SourceKind]
    passes_left: int = 2


class QueueActions:
    """Resolve, record and flush operator actions; remember them (module docstring)."""

    def __init__(
        self,
        index: Index,
        topology: Topology,
        flusher: Flusher,
        *,
        publish_action: PublishAction,
        state: Synced,
        connect: Connect,
    ) -> None:
        self._index = index
        self._topology = topology
        self._flusher = flusher
        self._publish_action = publish_action
        self._state = state
        self._connect = connect
        self._connection: AbstractConnection | None = None
        self._requests: OrderedDict[str, Remembered] = OrderedDict()
        self._jobs: list[_Job] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False
        self.reports: list[Report] = []  # the last walks, for tests and logs

    async def act(self, selection: Selection, actor: str) -> dict[str, Any]:
        """Do what ``selection`` asks; the API's answer (``PublishError`` if not recorded)."""
        found = await resolve(self._index, selection)
        answer: dict[str, Any] = {
            "action": selection.action,
            "dry_run": selection.dry_run,
            "matched": len(found.states),
            "ids": found.ids,
            "not_waiting": found.not_waiting,
            "request_id": None,
        }
        if selection.dry_run or not found.states:
            return answer
        request_id = new_request_id()
        record = OperatorAction(
            request_id=request_id,
            action=selection.action,  # type: ignore[arg-type]  # checked by parse_selection
            message_ids=tuple(found.ids),
            reason=selection.reason,
            actor=actor,
            keep=selection.keep,
            at=utcnow(),
        )
        await self._publish_action(record)
        log.info(
            "operator %s of %d messages by %s", selection.action, len(found.ids), actor,
            extra={"request_id": request_id},
        )  # fmt: skip
        self._remember(request_id, selection.action, tuple(found.ids))
        await self._state.wait_synced(SYNC_TIMEOUT)
        self._enqueue(record, found)
        answer["request_id"] = request_id
        return answer

    async def status(self, request_id: str) -> dict[str, Any] | None:
        """How far the request has got, or None if it is not (or no longer) remembered."""
        self._forget_old()
        remembered = self._requests.get(request_id)
        if remembered is None:
            return None
        return await request_status(self._index, request_id, remembered.action, remembered.ids)

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="audit-queue-flush")

    async def idle(self, timeout: float) -> bool:
        """True once no flush is queued or running (tests)."""
        deadline = time.monotonic() + timeout
        while self._jobs or self._wake.is_set() or self._busy:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None

    # -- remembering ----------------------------------------------------------------------

    def _remember(self, request_id: str, action: str, ids: tuple[str, ...]) -> None:
        self._requests[request_id] = Remembered(action, ids, time.monotonic())
        while len(self._requests) > MAX_REMEMBERED:
            self._requests.popitem(last=False)
        self._forget_old()

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - REMEMBER
        while self._requests and next(iter(self._requests.values())).at < cutoff:
            self._requests.popitem(last=False)

    # -- flushing -------------------------------------------------------------------------

    def _enqueue(self, record: OperatorAction, found: Resolved) -> None:
        kinds = {SOURCES_OF_STATE[s] for s in found.states.values() if s in SOURCES_OF_STATE}
        request = Request(
            record.request_id,
            record.action,
            frozenset(found.ids),
            reason=record.reason,
            actor=record.actor,
        )
        self._jobs.append(_Job(request, kinds))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            jobs, self._jobs = self._jobs, []
            self._busy = True
            try:
                await self._pass(jobs)
            except Exception:
                log.exception("queue flush failed")
            finally:
                self._busy = False

    async def _pass(self, jobs: list[_Job]) -> None:
        """One walk of every queue ``jobs`` need; stragglers get one more, later."""
        found: set[str] = set()
        kinds = set().union(*(job.kinds for job in jobs))
        for source in sources(self._topology, kinds):
            wanted = [job.request for job in jobs if source.kind in job.kinds]
            report = await self._walk(source, wanted)
            if report is not None:
                found |= report.moved | report.duplicates
        again = [
            _Job(replace(job.request, targets=missing), job.kinds, job.passes_left - 1)
            for job in jobs
            if job.passes_left > 1 and (missing := job.request.targets - found)
        ]
        if again:
            asyncio.get_running_loop().call_later(STRAGGLER_DELAY, self._requeue, again)

    def _requeue(self, jobs: list[_Job]) -> None:
        for job in jobs:
            log.info(
                "looking again for %d messages", len(job.request.targets),
                extra={"request_id": job.request.request_id},
            )  # fmt: skip
        self._jobs += jobs
        self._wake.set()

    async def _walk(self, source: Source, requests: list[Request]) -> Report | None:
        delay = 1.0
        for attempt in range(1, FLUSH_TRIES + 1):
            try:
                report = await self._flusher.flush(await self._channel_source(), source, requests)
            except Exception as error:  # FlushError, a closed channel, a lost connection
                log.warning("flush of %s failed (try %d): %s", source.queue, attempt, error)
            else:
                self.reports = [*self.reports[-99:], report]
                return report
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        log.error("giving up flushing %s; the control record stays in force", source.queue)
        return None

    async def _channel_source(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await self._connect()
        return self._connection
