"""Which trail an event goes to, and the JSON line written for it.

Routing by ``kind`` (the four file names are the operators' contract):

* ``OutboundAuditTrailSuccess.log``  delivered
* ``OutboundAuditTrailFailure.log``  bounced, expired, rejected, discarded
* ``SmtpQueue.log``                  received, filtered, deferred, dsn_sent, parked, refused,
  delayed, operator
* ``SMTPOutboundConversation.log``   conversation

``format_lines(event)`` gives every line an event writes: its own line
(``format_line``) and, for an ``operator`` event that ends the mail
(``delete``, ``bounce``), one failure-trail line per recipient it names, whose
``reason`` is ``deleted by operator: <reason>`` or ``bounced by operator:
<reason>`` (``OPERATOR_FAILURES``). Operator lines in ``SmtpQueue.log`` carry
``action`` and ``actor``; parked ones ``stage`` and ``count``.

Each line is one JSON object with a fixed key list per trail (``KEYS``), in
that order; a value the event does not carry is ``null``, so every line of a
file has the same keys. ``at``, ``kind``, ``message_id`` and ``event_id`` are
always present. Strings are JSON-escaped with ``ensure_ascii``: CR, LF, other
control characters and every non-ASCII character become ``\\uXXXX``
escapes, so nothing a client sent can end a line or forge another one.
Times are ISO 8601 in UTC; ``reply`` is ``{"code", "enhanced", "text"}``,
``tls`` is ``{"version", "cipher", "verified"}``.

Lines are where data becomes text for people: ``mx_host`` is rendered here
from the event's ``mx`` (Postfix style ``name[ip]:port``, or the bare name
when no address was reached). An event from before version 2 carries only
the string ``mx_host``; it is written as it was sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from postline.models import Event, EventKind


class Trail(StrEnum):
    """The trail files, by file name."""

    SUCCESS = "OutboundAuditTrailSuccess.log"
    FAILURE = "OutboundAuditTrailFailure.log"
    QUEUE = "SmtpQueue.log"
    CONVERSATION = "SMTPOutboundConversation.log"


ROUTES: dict[EventKind, Trail] = {
    EventKind.DELIVERED: Trail.SUCCESS,
    EventKind.BOUNCED: Trail.FAILURE,
    EventKind.EXPIRED: Trail.FAILURE,
    EventKind.REJECTED: Trail.FAILURE,
    EventKind.RECEIVED: Trail.QUEUE,
    EventKind.FILTERED: Trail.QUEUE,
    EventKind.DEFERRED: Trail.QUEUE,
    EventKind.DSN_SENT: Trail.QUEUE,
    EventKind.PARKED: Trail.QUEUE,
    EventKind.CONVERSATION: Trail.CONVERSATION,
    EventKind.REFUSED: Trail.QUEUE,
    EventKind.DISCARDED: Trail.FAILURE,
    EventKind.DELAYED: Trail.QUEUE,
    EventKind.OPERATOR: Trail.QUEUE,
}

COMMON = ("at", "kind", "message_id", "event_id")
KEYS: dict[Trail, tuple[str, ...]] = {
    Trail.SUCCESS: (
        *COMMON,
        "mail_from",
        "recipient",
        "mx_host",
        "reply",
        "attempts",
        "queued_seconds",
        "session_id",
        "tls",
    ),
    Trail.FAILURE: (
        *COMMON,
        "mail_from",
        "recipient",
        "reason",
        "reply",
        "mx_host",
        "attempts",
        "queued_seconds",
        "service",
        "session_id",
        "tls",
    ),
    Trail.QUEUE: (
        *COMMON,
        "service",
        "mail_from",
        "recipient",
        "rcpt_to",
        "reason",
        "attempt",
        "next_attempt_at",
        "mx_host",
        "reply",
        "size",
        "client_ip",
        "auth_user",
        "session_id",
        "tls",
        "action",
        "actor",
        "stage",
        "count",
    ),
    Trail.CONVERSATION: (
        *COMMON,
        "session_id",
        "mx_host",
        "mail_from",
        "recipient",
        "rcpt_to",
        "transcript",
        "tls",
    ),
}


def mx_host(event: Event) -> str | None:
    """The event's MX as people read it; a version 1 event's ``mx_host`` as it was sent."""
    return event.mx.label if event.mx is not None else event.mx_host


_RENDERED: dict[str, Callable[[Event], Any]] = {
    "attempts": lambda event: event.attempt,
    "mx_host": mx_host,
}
"""Line key -> its value, where the line does not show an ``Event`` field as it is."""


OPERATOR_FAILURES = {"delete": "deleted by operator", "bounce": "bounced by operator"}
"""Operator actions that end the mail -> the failure-trail reason (``: <reason>`` follows)."""


def trail_for(kind: EventKind) -> Trail:
    return ROUTES[kind]


def format_lines(event: Event) -> list[tuple[Trail, bytes]]:
    """Every trail line ``event`` writes, with its trail (module docstring)."""
    lines = [(trail_for(event.kind), format_line(event))]
    ended = OPERATOR_FAILURES.get(event.action or "") if event.kind is EventKind.OPERATOR else None
    if ended is not None:
        reason = f"{ended}: {event.reason}" if event.reason else ended
        recipients: tuple[str | None, ...] = event.rcpt_to or (event.recipient,)
        for address in recipients:
            failed = event.model_copy(update={"recipient": address, "reason": reason})
            lines.append((Trail.FAILURE, _line(failed, Trail.FAILURE)))
    return lines


def format_line(event: Event) -> bytes:
    """The trail line for ``event``, ending with ``\\n`` (module docstring)."""
    return _line(event, trail_for(event.kind))


def _line(event: Event, trail: Trail) -> bytes:
    record = {key: _value(_field(event, key)) for key in KEYS[trail]}
    text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii") + b"\n"


def _field(event: Event, key: str) -> Any:
    render = _RENDERED.get(key)
    return render(event) if render is not None else getattr(event, key)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        at = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return at.astimezone(UTC).isoformat()
    if isinstance(value, EventKind):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, float) and not math.isfinite(value):  # no JSON spelling
        return None
    return value
