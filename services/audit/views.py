"""What the index knows about one message, and its JSON for the API and ``postline trace``.

``MessageRecord`` and ``RecipientRecord`` are plain data: the index fills them
(its ``fold`` module decides the states), the API, the console and the diagnosis
read them. ``events`` holds every event of the message in time order,
transcripts included; ``received_at`` is None when the ``received`` event never
came (a refusal, or events that arrived before it).

``to_json(record)`` is the one JSON shape of a message (``trace --json``, the
API): ``message_id``, ``state``, ``partly_delivered``, ``mail_from``,
``received_at``, ``size``, ``subject``, ``header_message_id``, ``submission``
(``client_ip``, ``helo``, ``auth_user``, ``tls``: the TLS version or null),
``recipients`` (``address``, ``state``, ``reply`` as ``{"code", "enhanced",
"text"}`` or null, ``attempts``, ``mx``, ``next_attempt_at``), ``events`` (each
``Event.model_dump(mode="json", exclude_none=True)``) and ``diagnosis`` (one
line, ``diagnose``). Times are ISO 8601 in UTC (``2026-03-04T05:06:07Z``); a
naive time is taken as UTC. Nothing is escaped here: JSON encoding is the
escaping, and HTML escaping is the console's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from postline.audit.diagnose import diagnose
from postline.models import Event
from postline.reply import SmtpReply

STATES = (
    "queued",
    "deferred",
    "delivered",
    "bounced",
    "expired",
    "rejected",
    "refused",
    "parked",
    "held",
    "deleted",
)
"""Every state a message or a recipient can be in (``fold`` decides which)."""


@dataclass
class RecipientRecord:
    """One recipient: its state, the last reply, the attempts and where the last one went."""

    address: str
    state: str
    reply: SmtpReply | None = None
    attempts: int = 0
    mx: str | None = None  # name[ip]:port of the last attempt
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class MessageRecord:
    """One message as the index folded it from its events."""

    message_id: str
    state: str
    partly_delivered: bool = False
    mail_from: str | None = None
    received_at: datetime | None = None
    size: int | None = None
    subject: str | None = None
    header_message_id: str | None = None
    client_ip: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    tls_version: str | None = None
    recipients: list[RecipientRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (as pydantic writes event times), or None."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reply_json(reply: SmtpReply | None) -> dict[str, Any] | None:
    return None if reply is None else reply.model_dump(mode="json")


def recipient_json(recipient: RecipientRecord) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "state": recipient.state,
        "reply": reply_json(recipient.reply),
        "attempts": recipient.attempts,
        "mx": recipient.mx,
        "next_attempt_at": iso(recipient.next_attempt_at),
    }


def to_json(record: MessageRecord) -> dict[str, Any]:
    """The message in the ``trace --json`` shape (module docstring)."""
    return {
        "message_id": record.message_id,
        "state": record.state,
        "partly_delivered": record.partly_delivered,
        "mail_from": record.mail_from,
        "received_at": iso(record.received_at),
        "size": record.size,
        "subject": record.subject,
        "header_message_id": record.header_message_id,
        "submission": {
            "client_ip": record.client_ip,
            "helo": record.helo,
            "auth_user": record.auth_user,
            "tls": record.tls_version,
        },
        "recipients": [recipient_json(recipient) for recipient in record.recipients],
        "events": [event.model_dump(mode="json", exclude_none=True) for event in record.events],
        "diagnosis": diagnose(record),
    }
