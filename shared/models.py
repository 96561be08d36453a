"""What travels on the bus: the envelope (AMQP header) and events (AMQP body).

A message on a work queue is its RFC 5322 bytes as the AMQP body, untouched,
with the ``Envelope`` serialised as JSON in the ``postline-envelope`` header and
its ``message_id`` as the AMQP message id. Events are JSON bodies of ``Event``.
Both carry a ``version``; readers ignore fields they do not know.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from postline.reply import SmtpReply

ENVELOPE_HEADER = "postline-envelope"
_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_message_id() -> str:
    """A short, time-ordered, unique queue id such as ``4Q8ZT1K2M7XHBN3C``."""
    value = (time.time_ns() // 1_000_000) << 40 | secrets.randbits(40)
    chars = []
    while value:
        value, digit = divmod(value, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def stable_event_id(message_id: str, *parts: object) -> str:
    """An event id derived from ``message_id`` and ``parts`` (kind, attempt, recipient...).

    The same inputs give the same id, so an event published again after a
    redelivery is recognised (and dropped) by audit.
    """
    key = ":".join(["postline", message_id, *map(str, parts)])
    return uuid.uuid5(uuid.NAMESPACE_URL, key).hex


class Envelope(BaseModel):
    """SMTP envelope and history of one message; stable ``message_id`` across retries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = 1
    message_id: str
    mail_from: str = Field(description="Envelope sender; '' is the null sender <>.")
    rcpt_to: tuple[str, ...] = Field(min_length=1)
    received_at: datetime = Field(default_factory=utcnow)
    client_ip: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    tls: bool = False
    smtputf8: bool = False
    attempt: int = Field(default=0, ge=0, description="Delivery attempts already made.")
    first_attempt_at: datetime | None = None
    is_bounce: bool = Field(default=False, description="A DSN made by Postline: never bounced.")

    def to_header(self) -> str:
        return self.model_dump_json(exclude_defaults=False)

    @classmethod
    def from_header(cls, value: str | bytes) -> Envelope:
        return cls.model_validate_json(value)


class EventKind(StrEnum):
    """Everything that can happen to a message or one of its recipients."""

    RECEIVED = "received"
    FILTERED = "filtered"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    DSN_SENT = "dsn_sent"
    PARKED = "parked"
    CONVERSATION = "conversation"


class Event(BaseModel):
    """One outcome record (KumoMTA style: one type, tagged by ``kind``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = 1
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: EventKind
    at: datetime = Field(default_factory=utcnow)
    service: str
    message_id: str
    mail_from: str | None = None
    recipient: str | None = Field(default=None, description="Set on per-recipient events.")
    rcpt_to: tuple[str, ...] | None = Field(default=None, description="Message-level events.")
    attempt: int = 0
    mx_host: str | None = None
    reply: SmtpReply | None = None
    reason: str | None = None
    next_attempt_at: datetime | None = None
    queued_seconds: float | None = None
    size: int | None = None
    client_ip: str | None = None
    auth_user: str | None = None
    session_id: str | None = None
    transcript: list[str] | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> Event:
        return cls.model_validate_json(body)
