"""The flusher: walk one queue once, move the messages a request names, put the others back.

RabbitMQ cannot pick a message out of a queue, so a flush takes every message
of the source (``flushplan.Source``) off its head, at most as many as it held
when the walk began (what is put back lands behind them and is not seen
again), and for each one does what ``flushplan.decide`` says. The order per
message is what makes a crash harmless:

1. publish the copy or the put-back (confirmed: ``Publisher.publish`` returns
   only once the broker has it), then the flusher's own done marker and
   ``operator`` events, if the step has any (confirmed too);
2. only then ack the message taken.

A crash (the process killed, the connection lost, the task cancelled) at any
point leaves every message either still unacked, and RabbitMQ puts it back in
its queue, or acked after its new place was confirmed: nothing is lost. What
it can leave is a copy *and* its original for the messages in flight at that
moment (at most ``window``): the same message id and attempt, recognisable;
delivery drops whichever comes second once the first was handled (its done
marker), and a later flush drops the original for the same reason.

Up to ``window`` messages are in flight at once (taken with ``basic.get``, each
acked after its own publishes). The first failure stops the walk; what was
not settled goes back to the queue. Reports say what was seen and moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from postline.audit.flushplan import (
    Done,
    DoneCheck,
    Outcome,
    Request,
    Source,
    Step,
    Taken,
    decide,
    targets,
)
from postline.models import Event
from postline.topology import Topology

log = logging.getLogger("postline.audit.flush")

WINDOW = 16
"""Messages in flight at once during a walk (the most a crash can duplicate)."""
PublishDone = Callable[[Done], Awaitable[None]]
PublishEvents = Callable[[list[Event]], Awaitable[None]]


class Publisher(Protocol):
    """What the flusher needs of ``postline.bus.Bus``: a confirmed publish."""

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        content_type: str | None = None,
        expiration: float | None = None,
    ) -> None: ...


class FlushError(Exception):
    """The walk stopped early (the broker refused or lost a publish); nothing was lost."""


@dataclass
class Report:
    """What one walk of ``queue`` did."""

    queue: str
    seen: int = 0
    moved: set[str] = field(default_factory=set)
    """Targeted ids sent on (or settled by the flusher itself)."""
    duplicates: set[str] = field(default_factory=set)
    """Targeted ids dropped because a copy of them was already handled."""
    put_back: int = 0
    error: str | None = None


class Flusher:
    """Walks sources for requests (module docstring)."""

    def __init__(
        self,
        topology: Topology,
        publisher: Publisher,
        *,
        is_done: DoneCheck,
        publish_done: PublishDone,
        publish_events: PublishEvents,
        window: int = WINDOW,
    ) -> None:
        self.topology = topology
        self._publisher = publisher
        self._is_done = is_done
        self._publish_done = publish_done
        self._publish_events = publish_events
        self.window = max(1, window)

    async def flush(
        self, connection: AbstractConnection, source: Source, requests: Sequence[Request]
    ) -> Report:
        """Walk ``source`` once for ``requests``; raises ``FlushError`` if it had to stop."""
        report = Report(source.queue)
        named = targets(requests)
        channel = await connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(source.queue, passive=True)
            left = int(queue.declaration_result.message_count or 0)
            while left > 0:
                batch = await self._take(queue, min(self.window, left))
                if not batch:
                    break
                left -= len(batch)
                results = await asyncio.gather(
                    *(self._settle(m, source, named, report) for m in batch),
                    return_exceptions=True,
                )
                failed = [r for r in results if isinstance(r, BaseException)]
                if failed:
                    report.error = f"{type(failed[0]).__name__}: {failed[0]}"
                    raise FlushError(f"flush of {source.queue} stopped: {report.error}")
        finally:
            with contextlib.suppress(Exception):
                await channel.close()  # anything unacked goes back to the queue
        log.info(
            "flushed %s: %d seen, %d moved, %d duplicates dropped, %d put back",
            source.queue, report.seen, len(report.moved), len(report.duplicates),
            report.put_back, extra={"request_ids": [r.request_id for r in requests]},
        )  # fmt: skip
        return report

    async def _take(self, queue: AbstractQueue, most: int) -> list[AbstractIncomingMessage]:
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < most:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def _settle(
        self,
        message: AbstractIncomingMessage,
        source: Source,
        named: Mapping[str, Request],
        report: Report,
    ) -> None:
        """Publish what the step says, then ack; on any failure requeue it and raise."""
        try:
            step = decide(taken_of(message), source, named, self.topology, _now_ms(), self._is_done)
            await self._carry_out(step, message)
        except BaseException:
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            raise
        await message.ack()
        report.seen += 1
        mid = message.message_id or ""
        if step.outcome is Outcome.DUPLICATE:
            report.duplicates.add(mid)
        elif step.outcome is Outcome.MOVED:
            report.moved.add(mid)
        else:
            report.put_back += 1

    async def _carry_out(self, step: Step, message: AbstractIncomingMessage) -> None:
        if step.why:
            log.info(step.why, extra={"message_id": message.message_id})
        if step.publish is not None:
            target = step.publish
            expiration = None if target.expiration_ms is None else target.expiration_ms / 1000
            await self._publisher.publish(
                target.exchange,
                target.routing_key,
                message.body,
                message_id=message.message_id or uuid.uuid4().hex,
                headers=target.headers,
                content_type=message.content_type,
                expiration=expiration,
            )
        if step.done is not None:
            await self._publish_done(step.done)
        if step.events:
            await self._publish_events(step.events)


def taken_of(message: AbstractIncomingMessage) -> Taken:
    stamp = message.timestamp
    return Taken(
        message_id=message.message_id,
        headers=dict(message.headers or {}),
        routing_key=message.routing_key,
        timestamp_ms=int(stamp.timestamp() * 1000) if stamp is not None else None,
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
