"""Connection reuse and per-destination shaping.

``Pool`` keeps idle outbound sessions per target (``Target.key``: MX name,
address, port, TLS policy and transport security, credentials, source
address) and hands them out again: ``acquire`` sends ``RSET`` on an idle
session first (within the short ``rset_timeout``) and uses it only if the
server answers 250 and nothing else, else closes it and tries the next one or
opens a new session (a reused one notes the target's TLS policy line). A
session is kept only while it is reusable: alive and in step, i.e. every
reply matched its command and nothing unread or unsolicited arrived on it
(``Connection.reusable``). One that got input it did not ask for, even while
idle, is closed at once, never sent RSET: its replies would be read one step
late (counted in ``postline_delivery_out_of_step_total`` where it is noticed,
``smtpclient``). ``release`` keeps a reusable session that has served fewer
than ``max_messages_per_connection`` transactions and fits within
``max_idle_connections``; everything else gets ``QUIT`` (an out-of-step
session is just closed). Idle sessions are closed after
``connection_idle_timeout``.

``Limiter`` caps concurrent sessions per destination (recipient domain or
configured hop) at ``per_destination_concurrency``; a message that cannot get
a slot within ``destination_wait`` gets ``DestinationBusy`` and is requeued by
the caller (without counting the attempt), so a slow or tarpitting
destination holds at most its own slots and never every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from postline.delivery import metrics
from postline.delivery.connection import Connection, Target
from postline.delivery.sender import SessionConfig, open_session

_QUIT_TIMEOUT = 5.0


class Pool:
    """Idle sessions by target key (module docstring)."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        max_per_connection: int,
        idle_timeout: float,
        max_idle: int,
    ) -> None:
        self.config = config
        self._max_per_connection = max_per_connection
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        self._idle: dict[tuple[object, ...], list[Connection]] = defaultdict(list)
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def idle_count(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap_forever())

    async def acquire(self, target: Target) -> tuple[Connection, bool]:
        """A session to ``target`` and whether it was reused; ``HostFailure`` if none."""
        idle = self._idle.get(target.key)  # emptied lists are dropped by ``reap``
        while idle:
            connection = idle.pop()
            if await self._still_good(connection):
                metrics.TRANSACTIONS.labels("reused").inc()
                if target.note:
                    connection.note(target.note)
                return connection, True
        connection = await open_session(target, self.config)
        metrics.TRANSACTIONS.labels("new").inc()
        return connection, False

    def release(self, connection: Connection, reusable: bool) -> None:
        """Keep ``connection`` for reuse if it may be, else say QUIT in the background."""
        connection.transactions += 1
        keep = (
            reusable
            and connection.reusable
            and connection.transactions < self._max_per_connection
            and self.idle_count < self._max_idle
        )
        if keep:
            connection.idle_since = time.monotonic()
            connection.lines.clear()
            self._idle[connection.target.key].append(connection)
        else:
            self._quit(connection)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for conns in self._idle.values():
            for connection in conns:
                self._quit(connection)
        self._idle.clear()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=_QUIT_TIMEOUT + 1)

    def _fresh(self, connection: Connection, now: float) -> bool:
        return connection.reusable and now - connection.idle_since <= self._idle_timeout

    async def _still_good(self, connection: Connection) -> bool:
        if not self._fresh(connection, time.monotonic()):
            self._quit(connection)
            return False
        connection.note(f"reuse session {connection.session_id} to {connection.target.label}")
        connection.note("> RSET")
        try:
            response = await connection.smtp.rset(timeout=self.config.timeouts.rset)
        except Exception as error:
            connection.note(f"RSET failed: {error}; opening a new session")
            connection.abort()
            return False
        connection.replied(response.code, response.message)
        return True

    def _quit(self, connection: Connection) -> None:
        task = asyncio.ensure_future(connection.quit(_QUIT_TIMEOUT))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._idle_timeout / 2))
            self.reap()

    def reap(self) -> None:
        """QUIT stale idle sessions and drop empty lists.

        Lists are pruned in place: an ``acquire`` waiting for RSET holds its
        list and must see what is still idle, not a copy the reaper replaced.
        """
        now = time.monotonic()
        for key, conns in list(self._idle.items()):
            keep = []
            for connection in conns:
                if self._fresh(connection, now):
                    keep.append(connection)
                else:
                    self._quit(connection)
            conns[:] = keep
            if not conns:
                del self._idle[key]


class DestinationBusy(Exception):
    """No session slot at this destination became free in time."""


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0


class Limiter:
    """At most ``per_destination`` concurrent sessions per destination key."""

    def __init__(self, per_destination: int, wait: float) -> None:
        self._per_destination = per_destination
        self._wait = wait
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def slot(self, destination: str) -> AsyncIterator[None]:
        slot = self._slots.get(destination)
        if slot is None:
            slot = self._slots[destination] = _Slot(asyncio.Semaphore(self._per_destination))
        slot.users += 1
        try:
            try:
                await asyncio.wait_for(slot.semaphore.acquire(), self._wait)
            except TimeoutError:
                raise DestinationBusy(destination) from None
            try:
                yield
            finally:
                slot.semaphore.release()
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[destination]
