"""What travels on the bus: the envelope (AMQP header) and events (AMQP body).

A message on a work queue is its RFC 5322 bytes as the AMQP body, untouched,
with the ``Envelope`` serialised as JSON in the ``postline-envelope`` header and
its ``message_id`` as the AMQP message id. Events are JSON bodies of ``Event``.
Both carry a ``version``; readers ignore fields they do not know.

Events are data, not strings to parse again: the remote host is a ``Peer``
(MX name, address, port), a session's TLS is a ``TlsInfo`` (version, cipher,
whether the certificate was verified), and ``session_id`` names the SMTP
session. Strings such as Postfix's ``name[ip]:port`` (``Peer.label``) are
rendered only where people read them (trail lines, DSNs, logs).

Event versions: 2 carries ``mx`` (a ``Peer``), ``tls`` and, on delivery's
outcome events, ``session_id``. Version 1 carried the MX only as the string
``mx_host``; readers still accept it (``mx_host`` is read, never written).
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

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


class RecipientParams(BaseModel):
    """RFC 3461 parameters of one RCPT: ``NOTIFY`` (None: not given) and ``ORCPT``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    notify: tuple[Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"], ...] | None = None
    orcpt: str | None = None


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
    ret: Literal["FULL", "HDRS"] | None = Field(
        default=None, description="RFC 3461 RET: what a DSN returns of the message."
    )
    envid: str | None = Field(default=None, description="RFC 3461 ENVID (xtext decoded).")
    rcpt_params: dict[str, RecipientParams] = Field(
        default_factory=dict, description="RFC 3461 NOTIFY and ORCPT per recipient address."
    )
    delay_warned: bool = Field(
        default=False, description="A delay warning (Action: delayed) was already sent."
    )

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
    REFUSED = "refused"  # ingress refused a command: no message exists
    DISCARDED = "discarded"  # a filter dropped the message on purpose (audited, no DSN)
    DELAYED = "delayed"  # a delay warning DSN was sent (RFC 3464 Action: delayed)
    OPERATOR = "operator"  # an operator acted on waiting mail (postline queue)


class Peer(BaseModel):
    """A remote SMTP host as data: the MX name, the address connected to and the port.

    ``ip`` and ``port`` are None when the host was never reached (its
    addresses did not resolve, or all were refused).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    ip: str | None = None
    port: int | None = None

    @property
    def label(self) -> str:
        """Postfix style, for people: ``mx.example.org[192.0.2.1]:25`` (or just the name)."""
        if self.ip is None:
            return self.name
        port = "" if self.port is None else f":{self.port}"
        return f"{self.name}[{self.ip}]{port}"


class TlsInfo(BaseModel):
    """The TLS of one SMTP session: protocol version, cipher, certificate check.

    ``verified``: True when the peer's certificate was verified, False when it
    was accepted unverified (opportunistic TLS), None when not checked at all
    (ingress does not ask clients for certificates).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str | None = None
    cipher: str | None = None
    verified: bool | None = None


EVENT_VERSION = 2


class Event(BaseModel):
    """One outcome record (KumoMTA style: one type, tagged by ``kind``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = EVENT_VERSION
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: EventKind
    at: datetime = Field(default_factory=utcnow)
    service: str
    message_id: str
    mail_from: str | None = None
    recipient: str | None = Field(default=None, description="Set on per-recipient events.")
    rcpt_to: tuple[str, ...] | None = Field(default=None, description="Message-level events.")
    attempt: int = 0
    mx: Peer | None = Field(default=None, description="The remote host, on delivery events.")
    mx_host: str | None = Field(
        default=None,
        description="Version 1 only: the MX as 'name[ip]:port'. Read, never written.",
    )
    tls: TlsInfo | None = Field(default=None, description="The session's TLS; None: plaintext.")
    reply: SmtpReply | None = None
    reason: str | None = None
    next_attempt_at: datetime | None = None
    queued_seconds: float | None = None
    size: int | None = None
    client_ip: str | None = None
    auth_user: str | None = None
    session_id: str | None = None
    transcript: list[str] | None = None
    helo: str | None = Field(default=None, description="The client's HELO/EHLO name.")
    header_message_id: str | None = Field(
        default=None, description="The Message-ID header (received events)."
    )
    subject: str | None = Field(
        default=None, description="The decoded Subject, at most 200 characters (received)."
    )
    command: str | None = Field(
        default=None, description="Refused events: the command refused (CONNECT, AUTH, MAIL...)."
    )
    count: int | None = Field(
        default=None, description="Refused events: how many like it this event stands for."
    )
    sampled: bool | None = Field(
        default=None, description="Refused events: more like it were counted, not each recorded."
    )
    action: str | None = Field(
        default=None, description="Operator events: retry, delete, hold, release, bounce."
    )
    actor: str | None = Field(
        default=None, description="Operator events: who (API token name or OS user)."
    )
    stage: str | None = Field(
        default=None, description="Parked events: the queue the message was parked from."
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> Event:
        return cls.model_validate_json(body)
