"""``<ns>.parked.log`` -> ``parked`` events, for messages the broker parked on its own.

``<ns>.parked`` is a fanout exchange: every parked message is also copied to
``<ns>.parked.log``, which audit consumes here. ``parked_event(headers,
message_id, namespace)`` is the pure part: the ``parked`` event one such copy
stands for, or None. Which death parked it is the *latest* entry of the
``x-death`` header (RabbitMQ keeps it most recent first; the
``x-first-death-*`` headers name the first death ever, which for mail that
waited in a retry tier is the tier's ``expired``, so they are only the
fallback when ``x-death`` is missing). The event says:

* ``stage``: the queue it was parked from without the ``<ns>.`` prefix
  (``deliver``, ``submit``, ``events``);
* ``reason``: RabbitMQ's reason (``delivery_limit``: its worker failed it
  ``x-delivery-limit`` times), ``count``: how often it was dead-lettered from
  that queue for that reason (a released message parked again counts 2);
* the sender, recipients and attempt of its envelope when it has one;
* ``event_id = stable_event_id(message_id, "parked", queue, count)``, so a
  redelivered copy makes no second event.

A message rejected by its worker (reason ``rejected``: ``Poison``) gets no
event here: the bus already published one with the error's text. Nor does a
parked ``parked`` event (``body`` given: an event parked from ``events`` that is
itself a ``parked`` event), so an audit that keeps failing cannot start a chain
of events about events.

``ParkedLog`` consumes the queue on a channel of a connection it is given
(``start``, again after a fail-over) and acks each copy only after its event
is confirmed (``publish``: the bus's ``publish_events``); a failed publish
requeues the copy (after ``RETRY_DELAY``). A copy it cannot read at all is acked with a warning
(there is nothing to say about it, and the message itself stays parked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind, stable_event_id

log = logging.getLogger("postline.audit.parked")

SERVICE = "audit"
PREFETCH = 50
RETRY_DELAY = 1.0
"""Seconds before a copy whose event could not be published is requeued."""
POISON_REASON = "rejected"
Publish = Callable[[list[Event]], Awaitable[None]]


def latest_death(headers: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(queue, reason, count) of the latest dead-lettering, or None when never dead-lettered."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        first = deaths[0]
        count = first.get("count")
        return (
            str(first.get("queue", "")),
            str(first.get("reason", "")),
            count if isinstance(count, int) and count > 0 else 1,
        )
    queue, reason = headers.get("x-first-death-queue"), headers.get("x-first-death-reason")
    if queue is None or reason is None:
        return None
    return _text(queue), _text(reason), 1


def stage_of(queue: str, namespace: str) -> str:
    """``<ns>.deliver`` -> ``deliver`` (a queue of another namespace stays as it is)."""
    return queue.removeprefix(f"{namespace}.")


def envelope_of(headers: Mapping[str, Any]) -> Envelope | None:
    raw = headers.get(ENVELOPE_HEADER)
    if not isinstance(raw, str | bytes):
        return None
    try:
        return Envelope.from_header(raw)
    except ValueError:
        return None


def parked_event(
    headers: Mapping[str, Any], message_id: str | None, namespace: str, body: bytes = b""
) -> Event | None:
    """The ``parked`` event of one copy from ``<ns>.parked.log`` (module docstring)."""
    death = latest_death(headers)
    if death is None or death[1] == POISON_REASON:
        return None
    queue, reason, count = death
    if stage_of(queue, namespace) == "events" and _is_parked_event(body):
        return None
    mid = message_id or "unknown"
    envelope = envelope_of(headers)
    return Event(
        event_id=stable_event_id(mid, "parked", queue, count),
        kind=EventKind.PARKED,
        service=SERVICE,
        message_id=mid,
        mail_from=envelope.mail_from if envelope is not None else None,
        rcpt_to=envelope.rcpt_to if envelope is not None else None,
        attempt=envelope.attempt if envelope is not None else 0,
        reason=reason,
        stage=stage_of(queue, namespace),
        count=count,
    )


class ParkedLog:
    """Consumes ``queue`` (``<ns>.parked.log``) into ``parked`` events (module docstring)."""

    def __init__(self, queue: str, namespace: str, publish: Publish) -> None:
        self.queue = queue
        self.namespace = namespace
        self._publish = publish
        self._channel: AbstractChannel | None = None

    @property
    def open(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def start(self, connection: AbstractConnection) -> None:
        """Consume on a new channel of ``connection`` (replacing an earlier one)."""
        await self.close()
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(self.queue, ensure=False)
        await queue.consume(self._on_message)
        self._channel = channel

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            headers = dict(message.headers or {})
            event = parked_event(headers, message.message_id, self.namespace, message.body)
        except Exception as error:  # a header shape no broker writes: nothing to report
            log.warning("unreadable parked copy skipped (%s)", error)
            await _settle(message.ack())
            return
        try:
            if event is not None:
                await self._publish([event])
                log.info(
                    "parked by the broker: %s from %s", event.reason, event.stage,
                    extra={"message_id": event.message_id},
                )  # fmt: skip
        except Exception as error:
            log.warning("parked event not published (%s); the copy is requeued", error)
            await asyncio.sleep(RETRY_DELAY)
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()


def _is_parked_event(body: bytes) -> bool:
    try:
        return Event.from_json(body).kind is EventKind.PARKED
    except ValueError:
        return False


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def _settle(action: Awaitable[Any]) -> None:
    try:
        await action
    except Exception as error:  # the channel is gone: the broker redelivers the copy
        log.warning("could not settle a parked copy (%s)", error)
