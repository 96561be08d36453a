"""Operator control records on the ``<ns>.control`` stream, and the state they build.

The stream is the replicated control state of ``postline queue``: the audit API
appends an ``OperatorAction`` per request (retry, delete, hold, release or
bounce of some message ids), delivery appends a ``DoneMarker`` once it has
handled a copy the flusher moved out of a queue. Every reader (each delivery
replica, audit's flusher) keeps a ``ControlState`` that reads the stream from its
first record and holds:

* the latest action per message id (latest by ``at``; a tie goes to the one
  read last), so a ``release`` after a ``hold`` wins;
* the set of (message id, attempt, copy) done markers, which lets a duplicate
  copy left by a crashed flush be recognised and dropped. ``copy`` is the
  ``postline-copy`` header delivery gives every message it puts in a retry
  tier or in ``<ns>.held`` (a new value per publish): a message published again
  at the same attempt (held, or back from a busy destination) is a new copy,
  which the marker of the one handled before does not drop. Messages without
  the header (from ``filter``, or published before it existed) have copy None.

Records are JSON bodies (``application/json``) with header ``postline-control``
naming the kind: ``action``, ``done`` or ``sync``. ``sync`` records carry a
token only: ``wait_synced`` appends one and waits to read it back, which proves
every record published before it was read. Unknown kinds and malformed
records are logged and skipped (a newer writer must not stop an older reader).

``ControlState.start(connection)`` consumes on a channel of its own (prefetch
``PREFETCH``, one ack per record). On a robust connection the consumer is
restored after a reconnect and reads the stream from the start again, which is
harmless: applying a record twice changes nothing. ``start`` may be called
again with another connection (after a fail-over); the state read so far is
kept. ``run(bus)`` does all of that for a service: it reads through a
connection of the bus's (``Bus.open_connection``), sets ``synced`` once it has
caught up, and opens another connection when the bus moves to another node.
Memory is bounded by the stream's retention (``x-max-age``): every
``PRUNE_EVERY`` records, actions older than ``retention`` seconds and done
markers read longer ago than that are forgotten, as the stream forgets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from postline.bus import Bus

log = logging.getLogger("postline.control")

CONTROL_HEADER = "postline-control"
DUE_HEADER = "postline-due"
"""On a message in a retry tier: its next attempt, epoch milliseconds."""
EXPIRES_HEADER = "postline-expires"
"""On a held message: its lifetime deadline, epoch milliseconds (absent when kept)."""
FLUSH_HEADER = "postline-flush"
"""On a copy the flusher moved out of a queue: the request id."""
COPY_HEADER = "postline-copy"
"""On every message delivery puts in a retry tier or the held queue: a new uuid4 hex each time."""
PREFETCH = 1000
RETENTION = 14 * 86400.0
"""Seconds a record matters: the control stream's default ``x-max-age`` (14D)."""
PRUNE_EVERY = 1000

ActionName = Literal["retry", "delete", "hold", "release", "bounce"]
ACTIONS: tuple[ActionName, ...] = ("retry", "delete", "hold", "release", "bounce")


@dataclass(frozen=True)
class OperatorAction:
    """One operator request on some messages (kind ``action``)."""

    request_id: str
    action: ActionName
    message_ids: tuple[str, ...]
    reason: str | None
    actor: str
    keep: bool
    at: datetime

    kind = "action"

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "action": self.action,
            "message_ids": list(self.message_ids),
            "reason": self.reason,
            "actor": self.actor,
            "keep": self.keep,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperatorAction:
        action = data["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        at = datetime.fromisoformat(data["at"])
        return cls(
            request_id=str(data["request_id"]),
            action=action,
            message_ids=tuple(str(m) for m in data["message_ids"]),
            reason=data.get("reason"),
            actor=str(data.get("actor") or "unknown"),
            keep=bool(data.get("keep", False)),
            at=at if at.tzinfo else at.replace(tzinfo=UTC),
        )


@dataclass(frozen=True)
class DoneMarker:
    """Copy ``copy`` (its ``postline-copy``) of ``message_id`` at envelope attempt
    ``attempt``, flushed for ``request_id``, was handled."""

    message_id: str
    attempt: int
    request_id: str
    copy: str | None = None

    kind = "done"

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "attempt": self.attempt,
            "request_id": self.request_id,
            "copy": self.copy,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DoneMarker:
        copy = data.get("copy")
        return cls(
            str(data["message_id"]),
            int(data["attempt"]),
            str(data["request_id"]),
            None if copy is None else str(copy),
        )


ControlRecord = OperatorAction | DoneMarker


def new_request_id() -> str:
    return uuid.uuid4().hex


def new_copy_id() -> str:
    """A ``postline-copy`` value."""
    return uuid.uuid4().hex


def copy_of(headers: Mapping[str, Any]) -> str | None:
    """The ``postline-copy`` header of a message (None: it has none)."""
    value = headers.get(COPY_HEADER)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def encode(record: ControlRecord) -> bytes:
    return json.dumps(record.to_dict()).encode()


def decode(kind: str, body: bytes) -> ControlRecord | None:
    """The record of ``kind`` in ``body``; None for ``sync`` and unknown kinds."""
    data = json.loads(body)
    if kind == OperatorAction.kind:
        return OperatorAction.from_dict(data)
    if kind == DoneMarker.kind:
        return DoneMarker.from_dict(data)
    return None


def _record_id(record: ControlRecord) -> str:
    if isinstance(record, OperatorAction):
        return record.request_id
    return f"done:{record.message_id}:{record.attempt}:{record.request_id}:{record.copy}"


async def publish_control(bus: Bus, record: ControlRecord) -> None:
    """Append ``record`` to the control stream; returns once confirmed (else ``PublishError``)."""
    await bus.publish_to_queue(
        bus.topology.control_stream,
        encode(record),
        message_id=_record_id(record),
        headers={CONTROL_HEADER: record.kind},
        content_type="application/json",
    )


class ControlState:
    """The latest action per message and the done markers, read from the stream."""

    def __init__(self, stream: str, retention: float = RETENTION) -> None:
        self.stream = stream
        self.retention = retention
        self._actions: dict[str, OperatorAction] = {}
        self._done: dict[tuple[str, int, str | None], float] = {}  # -> monotonic time read
        self._tokens: dict[str, asyncio.Event] = {}
        self._channel: AbstractChannel | None = None
        self._connection: AbstractConnection | None = None
        self.records = 0
        """Records applied so far (re-reads included)."""
        self.synced = asyncio.Event()
        """Set by ``run`` once every record published before it started was read."""

    async def run(self, bus: Bus, sync_timeout: float = 10.0, poll: float = 1.0) -> None:
        """Follow the stream through ``bus``'s node for good (cancel to stop).

        Sets ``synced`` once caught up; when the bus drops the connection (a
        fail-over to another node) a new one is opened and read from the start.
        """
        while True:
            try:
                connection = await bus.open_connection("control")
                await self.start(connection)
                while not connection.is_closed:
                    if not self.synced.is_set() and await self.wait_synced(sync_timeout):
                        self.synced.set()
                        log.info("control stream read", extra={"records": self.records})
                    await asyncio.sleep(poll)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the bus is reconnecting: try again on its next node
                log.warning("control stream not readable (%s: %s)", type(error).__name__, error)
                await asyncio.sleep(poll)

    async def start(self, connection: AbstractConnection) -> None:
        """Read the stream from its first record on a new channel of ``connection``.

        Replaces the channel of an earlier ``start`` (the state is kept).
        """
        await self._close_channel()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.declare_queue(self.stream, passive=True)  # restored on reconnect
        await queue.consume(self._on_message, arguments={"x-stream-offset": "first"})
        self._channel, self._connection = channel, connection

    async def wait_synced(self, timeout: float) -> bool:
        """True once every record published before this call has been read.

        Appends a ``sync`` record and waits (up to ``timeout`` s) to read it back.
        False on timeout or when it could not be published (not started, broker away).
        """
        if self._connection is None:
            return False
        token = uuid.uuid4().hex
        seen = self._tokens[token] = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._publish_sync(self._connection, token)
                await seen.wait()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a timeout, or no channel while the broker is away
            log.warning("control stream not synced within %gs (%r)", timeout, error)
            return False
        finally:
            self._tokens.pop(token, None)

    def action_for(self, message_id: str) -> OperatorAction | None:
        """The latest operator action naming ``message_id`` (None: none read)."""
        return self._actions.get(message_id)

    def is_done(self, message_id: str, attempt: int, copy: str | None = None) -> bool:
        """Copy ``copy`` of ``message_id`` at ``attempt`` was already handled (an exact
        match: None is a value like any other)."""
        return (message_id, attempt, copy) in self._done

    def apply(self, record: ControlRecord) -> None:
        """Fold one record into the state (idempotent)."""
        self.records += 1
        if self.records % PRUNE_EVERY == 0:
            self.prune()
        if isinstance(record, DoneMarker):
            self._done[(record.message_id, record.attempt, record.copy)] = time.monotonic()
            return
        for message_id in record.message_ids:
            current = self._actions.get(message_id)
            if current is None or record.at >= current.at:
                self._actions[message_id] = record

    def prune(self, now: datetime | None = None) -> None:
        """Forget actions older than ``retention`` and done markers read longer ago."""
        wall = (now or datetime.now(UTC)).timestamp() - self.retention
        self._actions = {m: a for m, a in self._actions.items() if a.at.timestamp() >= wall}
        read_since = time.monotonic() - self.retention
        self._done = {key: at for key, at in self._done.items() if at >= read_since}

    @property
    def size(self) -> int:
        """Message ids with an action plus done markers held (what ``prune`` bounds)."""
        return len(self._actions) + len(self._done)

    async def close(self) -> None:
        await self._close_channel()
        self._connection = None

    async def _publish_sync(self, connection: AbstractConnection, token: str) -> None:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            message = aio_pika.Message(
                json.dumps({"token": token}).encode(),
                headers={CONTROL_HEADER: "sync"},
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await channel.default_exchange.publish(message, self.stream, mandatory=True)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        kind = str((message.headers or {}).get(CONTROL_HEADER, ""))
        try:
            if kind == "sync":
                token = json.loads(message.body).get("token")
                if token in self._tokens:
                    self._tokens[token].set()
            else:
                record = decode(kind, message.body)
                if record is None:
                    log.warning("skipping a control record of unknown kind %r", kind)
                else:
                    self.apply(record)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("skipping a malformed control record (%s: %s)", kind, error)
        await message.ack()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
