"""Refused submissions as ``refused`` events, published off the SMTP reply path.

``Refusals.record`` is what ingress calls when it refuses a connection,
MAIL, RCPT, DATA or AUTH. It is synchronous, O(1) and never raises or waits:
the reply goes out whatever happens to the event.

* Coalescing: refusals with the same key (client key, command, reason)
  share a slot. The first one is an event at once (``count`` 1); repeats
  within ``window`` seconds of it are only counted in the slot, and when
  the window ends the slot becomes one more event with ``count`` = the
  repeats and ``sampled`` true, carrying the details (time, sender,
  recipient, reply, HELO, user) of the last of them. The next refusal
  opens a new slot. So one client hammering one command yields at most two
  events per window, and the counts of all events add up to the refusals.
* Bounds: at most ``max_slots`` open slots (a new key beyond that closes
  the oldest slot first) and at most ``capacity`` events waiting for the
  broker. Nothing grows with the number of refusals.
* Publishing: one background task (started by the first refusal) sends
  batches of up to ``BATCH`` events with ``publish_events``. An event that
  cannot go is dropped, never retried, and counted in
  ``postline_ingress_refused_events_dropped_total``: when ``capacity``
  events are already waiting, when the bus is not connected (the batch is
  dropped at once, not held while the broker is away), when the broker does
  not confirm a batch, and what is still waiting when ingress stops.
* Events have no queue id: ``message_id`` is ``refused-<event_id>``.
  ``close`` turns the open slots into events, waits (bounded) for the
  buffer to empty and stops the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from postline.ingress import metrics
from postline.ingress.state import Connection
from postline.models import Event, EventKind, TlsInfo, utcnow
from postline.reply import SmtpReply

log = logging.getLogger("postline.ingress.refusals")
WINDOW = 5.0
"""Seconds in which repeats of one (client, command, reason) become one event."""
CAPACITY = 1000
"""Events waiting for the broker at most; more are dropped."""
MAX_SLOTS = 4096
"""Open coalescing slots at most (one per client, command and reason)."""
BATCH = 100
Clock = Callable[[], float]


class EventBus(Protocol):
    """What ``Refusals`` needs of ``postline.bus.Bus``."""

    @property
    def ready(self) -> bool: ...

    async def publish_events(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class Refusal:
    """One refused command, as the event will tell it."""

    command: str
    reason: str
    reply: SmtpReply | None
    at: datetime
    client_ip: str | None
    helo: str | None
    auth_user: str | None
    tls: TlsInfo | None
    session_id: str
    mail_from: str | None = None
    recipient: str | None = None
    rcpt_to: tuple[str, ...] | None = None

    def event(self, count: int, sampled: bool) -> Event:
        event_id = uuid.uuid4().hex
        return Event(
            event_id=event_id,
            kind=EventKind.REFUSED,
            at=self.at,
            service="ingress",
            message_id=f"refused-{event_id}",
            command=self.command,
            reason=self.reason,
            reply=self.reply,
            client_ip=self.client_ip,
            helo=self.helo,
            auth_user=self.auth_user,
            tls=self.tls,
            session_id=self.session_id,
            mail_from=self.mail_from,
            recipient=self.recipient,
            rcpt_to=self.rcpt_to,
            count=count,
            sampled=sampled or None,
        )


@dataclass
class _Slot:
    opened: float
    last: Refusal
    repeats: int = 0


@dataclass
class Refusals:
    """Coalesce refusals into events and publish them in the background (module docstring)."""

    bus: EventBus
    window: float = WINDOW
    capacity: int = CAPACITY
    max_slots: int = MAX_SLOTS
    clock: Clock = time.monotonic
    _slots: OrderedDict[tuple[str, str, str], _Slot] = field(default_factory=OrderedDict)
    _buffer: deque[Event] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _closing: bool = False

    def record(
        self,
        conn: Connection,
        command: str,
        reason: str,
        reply: SmtpReply | None,
        *,
        mail_from: str | None = None,
        recipient: str | None = None,
        rcpt_to: Sequence[str] | None = None,
        user: str | None = None,
    ) -> None:
        """Remember one refusal; never waits, never raises.

        ``user``: the user name an AUTH refusal was for (``auth_user`` of the event;
        otherwise that is the session's authenticated user).
        """
        try:
            refusal = _refusal(conn, command, reason, reply, mail_from, recipient, rcpt_to)
            if user is not None:
                refusal = replace(refusal, auth_user=user)
            self._add((conn.limit_key, command, reason), refusal)
            self._start()
        except Exception:  # an event must never cost the client its reply
            log.exception("refused event not recorded", extra=conn.log_fields())

    @property
    def waiting(self) -> int:
        """Events in the buffer, not yet handed to the broker."""
        return len(self._buffer)

    @property
    def open_slots(self) -> int:
        return len(self._slots)

    def expire(self) -> None:
        """Turn every slot whose window is over into its event."""
        now = self.clock()
        while self._slots:
            key, slot = next(iter(self._slots.items()))
            if now - slot.opened < self.window:
                return
            del self._slots[key]
            self._close_slot(slot)

    async def close(self, timeout: float) -> None:
        """Publish what is open or waiting (up to ``timeout`` s), then stop the task."""
        while self._slots:
            self._close_slot(self._slots.popitem(last=False)[1])
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._wake.set()
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._closing = False
        self._drop_all()

    # -- coalescing ------------------------------------------------------------------------
    def _add(self, key: tuple[str, str, str], refusal: Refusal) -> None:
        self.expire()
        slot = self._slots.get(key)
        if slot is not None:
            slot.repeats += 1
            slot.last = refusal
            return
        if len(self._slots) >= self.max_slots:
            self._close_slot(self._slots.popitem(last=False)[1])
        self._slots[key] = _Slot(self.clock(), refusal)
        self._enqueue(refusal.event(1, sampled=False))

    def _close_slot(self, slot: _Slot) -> None:
        if slot.repeats:
            self._enqueue(slot.last.event(slot.repeats, sampled=True))

    def _enqueue(self, event: Event) -> None:
        if len(self._buffer) >= self.capacity:
            metrics.REFUSED_EVENTS_DROPPED.inc()
            return
        self._buffer.append(event)
        self._wake.set()

    # -- publishing ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        while not (self._closing and not self._buffer):
            if not self._buffer:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._tick())
            self.expire()
            batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            if batch:
                await self._publish(batch)

    def _tick(self) -> float | None:
        """Seconds until the oldest slot's window ends (None: no slot open)."""
        if not self._slots:
            return None
        oldest = next(iter(self._slots.values()))
        return max(self.window - (self.clock() - oldest.opened), 0.01)

    async def _publish(self, batch: list[Event]) -> None:
        if not self.bus.ready:
            metrics.REFUSED_EVENTS_DROPPED.inc(len(batch))
            return
        try:
            await self.bus.publish_events(batch)
        except Exception as error:
            metrics.REFUSED_EVENTS_DROPPED.inc(len(batch))
            log.warning("%d refused events not published: %s", len(batch), error)
        except asyncio.CancelledError:  # stopped mid-publish: maybe not published
            metrics.REFUSED_EVENTS_DROPPED.inc(len(batch))
            raise

    def _drop_all(self) -> None:
        if self._buffer:
            metrics.REFUSED_EVENTS_DROPPED.inc(len(self._buffer))
            self._buffer.clear()


def _refusal(
    conn: Connection,
    command: str,
    reason: str,
    reply: SmtpReply | None,
    mail_from: str | None,
    recipient: str | None,
    rcpt_to: Sequence[str] | None,
) -> Refusal:
    tls = TlsInfo(version=conn.tls_version, cipher=conn.tls_cipher) if conn.tls else None
    return Refusal(
        command=command,
        reason=reason,
        reply=reply,
        at=utcnow(),
        client_ip=str(conn.client_ip) if conn.client_ip is not None else None,
        helo=conn.helo,
        auth_user=conn.auth_user,
        tls=tls,
        session_id=conn.session_id,
        mail_from=mail_from,
        recipient=recipient,
        rcpt_to=tuple(rcpt_to) if rcpt_to else None,
    )
