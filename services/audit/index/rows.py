"""Events and records as table rows (pure): what ``store.py`` inserts, and back.

Times are integer microseconds since the Unix epoch in UTC (a naive time is
UTC), so both databases compare and sort them the same way. An event's
``body`` is its JSON with every non-ASCII character escaped: whatever a client
sent is stored as it came and read back unchanged. The search columns are
lower case (addresses, domain, ``Message-ID`` without angle brackets, replies)
and a NUL character, which PostgreSQL text cannot hold, becomes U+FFFD there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from postline.audit.fold import address_key
from postline.audit.index.records import build_record, last_reply
from postline.audit.views import MessageRecord
from postline.models import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

EventRow = tuple[str, str, int, str, str]  # event_id, message_id, at_us, kind, body
MessageRow = tuple[str, str, int, str | None, str | None, int, int | None, int, str | None]
RecipientRow = tuple[str, str, str, str, str | None]  # message_id, address, domain, state, reply


def to_us(when: datetime) -> int:
    at = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return (at - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def event_row(event: Event) -> EventRow:
    body = json.dumps(
        event.model_dump(mode="json", exclude_none=True), ensure_ascii=True, separators=(",", ":")
    )
    return (event.event_id, event.message_id, to_us(event.at), event.kind.value, body)


def event_of(body: str) -> Event:
    return Event.model_validate_json(body)


def message_id_key(value: str) -> str:
    """A ``Message-ID`` as searched: no angle brackets or spaces around it, lower case."""
    return clean(value.strip().removeprefix("<").removesuffix(">").strip().lower())


def domain_key(domain: str) -> str:
    return clean(domain.strip().removeprefix("@").rstrip(".").lower())


def clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def summary_rows(
    message_id: str, events: Sequence[Event], first_us: int, last_us: int
) -> tuple[MessageRow, list[RecipientRow]]:
    """The search rows of one message: ``events`` are its events that carry state
    (conversations may be left out), ``first_us``/``last_us`` span all its events."""
    record = build_record(message_id, events)
    return _message_row(record, first_us, last_us), _recipient_rows(record)


def _message_row(record: MessageRecord, first_us: int, last_us: int) -> MessageRow:
    received = to_us(record.received_at) if record.received_at is not None else None
    reply = last_reply(record.events)
    return (
        record.message_id,
        record.state,
        int(record.partly_delivered),
        clean(address_key(record.mail_from)) if record.mail_from is not None else None,
        message_id_key(record.header_message_id) if record.header_message_id else None,
        received if received is not None else first_us,
        received,
        last_us,
        clean(str(reply).lower()) if reply is not None else None,
    )


def _recipient_rows(record: MessageRecord) -> list[RecipientRow]:
    rows = []
    for recipient in record.recipients:
        address = address_key(recipient.address)
        reply = clean(str(recipient.reply).lower()) if recipient.reply is not None else None
        rows.append(
            (record.message_id, clean(address), domain_key(address.rpartition("@")[2]),
             recipient.state, reply)
        )  # fmt: skip
    return rows
