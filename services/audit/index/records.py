"""A message's events -> its ``MessageRecord`` (pure; the one place records are built).

The states come from ``postline.audit.fold``. The submission facts (sender,
size, subject, ``Message-ID``, client IP, HELO, auth user, TLS version) come
from the ``received`` event; a message that never got one (a refusal, or
events that came before it) takes them from its ``refused`` event, then from
the first event that carries each. Per recipient: the last reply among the
events that apply to it, the number of delivery attempts (distinct attempt
numbers of its ``deferred``/``delivered``/``bounced``/``expired`` events), the
MX of the last of those (``name[ip]:port``), the next attempt time while it is
deferred, and the time of its last event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from postline.audit.fold import fold
from postline.audit.lines import mx_host
from postline.audit.views import MessageRecord, RecipientRecord
from postline.models import Event, EventKind
from postline.reply import SmtpReply

ATTEMPTS = frozenset(
    {EventKind.DEFERRED, EventKind.DELIVERED, EventKind.BOUNCED, EventKind.EXPIRED}
)
_SUBMISSION = ("mail_from", "size", "subject", "header_message_id", "client_ip", "helo")


def build_record(message_id: str, events: Iterable[Event]) -> MessageRecord:
    """The record of ``message_id`` from its events, in any order."""
    folded = fold(events)
    ordered = folded.events
    sources = _sources(ordered)
    received = next((e for e in ordered if e.kind is EventKind.RECEIVED), None)
    facts: dict[str, Any] = {name: _first(sources, name) for name in _SUBMISSION}
    return MessageRecord(
        message_id=message_id,
        state=folded.state,
        partly_delivered=folded.partly_delivered,
        received_at=received.at if received is not None else None,
        auth_user=_first(sources, "auth_user"),
        tls_version=_first_tls(sources),
        recipients=[
            recipient(address, folded.states[address], applying)
            for address, applying in folded.recipients.items()
        ],
        events=ordered,
        **facts,
    )


def recipient(address: str, state: str, applying: Sequence[Event]) -> RecipientRecord:
    """One recipient's record from the events that apply to it (time order)."""
    attempts = [event for event in applying if event.kind in ATTEMPTS]
    last_attempt = next((e for e in reversed(attempts) if mx_host(e) is not None), None)
    deferred = [event for event in attempts if event.kind is EventKind.DEFERRED]
    return RecipientRecord(
        address=address,
        state=state,
        reply=last_reply(applying),
        attempts=len({event.attempt for event in attempts}),
        mx=mx_host(last_attempt) if last_attempt is not None else None,
        next_attempt_at=deferred[-1].next_attempt_at if deferred and state == "deferred" else None,
        updated_at=applying[-1].at if applying else None,
    )


def last_reply(events: Sequence[Event]) -> SmtpReply | None:
    return next((event.reply for event in reversed(events) if event.reply is not None), None)


def first_at(events: Sequence[Event]) -> datetime | None:
    return min((event.at for event in events), default=None)


def _sources(ordered: Sequence[Event]) -> list[Event]:
    """Events to take submission facts from, best first."""
    preferred = (EventKind.RECEIVED, EventKind.REFUSED)
    return [
        *(e for kind in preferred for e in ordered if e.kind is kind),
        *(e for e in ordered if e.kind not in preferred),
    ]


def _first(sources: Sequence[Event], name: str) -> Any:
    return next((value for e in sources if (value := getattr(e, name)) is not None), None)


def _first_tls(sources: Sequence[Event]) -> str | None:
    submitted = (e for e in sources if e.kind in (EventKind.RECEIVED, EventKind.REFUSED))
    return next((e.tls.version for e in submitted if e.tls is not None), None)
