"""Delay warnings: one DSN with ``Action: delayed`` when mail has waited too long.

``[delivery] delay_warning_after`` (None: off). ``warning_due`` says whether
this attempt owes the sender a warning: the setting is on, the sender is real
(not ``<>``), the message is not itself a bounce, no warning was sent for it
yet (``Envelope.delay_warned``), and it was received at least
``delay_warning_after`` ago. Then ``delay_warning`` writes the DSN for the
deferred recipients whose ``NOTIFY`` allows it (absent, or with ``DELAY``;
``NEVER`` or a list without ``DELAY`` asks for none): ``Status`` from each
recipient's last reply (``4.x.x``), ``Will-Retry-Until`` the lifetime's end,
plus one ``delayed`` event per warned recipient (reply = its last reply) and
the ``dsn_sent`` event. Whether or not anyone asked for it, the retry copy is
marked ``delay_warned``: a message is considered once. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from postline.delivery.outcome import SERVICE, Outcome
from postline.dsn import FailedRecipient, bounce, wants_delay_notice
from postline.models import Envelope, Event, EventKind, stable_event_id


@dataclass(frozen=True)
class DelayWarning:
    """The warning's bytes, envelope and events (``delayed`` per recipient, ``dsn_sent``)."""

    data: bytes
    envelope: Envelope
    events: list[Event]


def warning_due(envelope: Envelope, after: float | None, now: datetime) -> bool:
    """Whether this message's sender is owed its one delay warning now (module docstring)."""
    if after is None or not envelope.mail_from or envelope.is_bounce or envelope.delay_warned:
        return False
    return (now - envelope.received_at).total_seconds() >= after


def delay_warning(
    envelope: Envelope,
    body: bytes,
    deferred: Sequence[Outcome],
    *,
    reporting_mta: str,
    attempt: int,
    now: datetime,
    retry_until: datetime,
) -> DelayWarning | None:
    """The warning for the ``deferred`` recipients that accept one; None if none does."""
    warned = [o for o in deferred if wants_delay_notice(envelope, o.recipient)]
    if not warned:
        return None
    items = [FailedRecipient(o.recipient, o.reply, o.mx) for o in warned]
    data, dsn, sent = bounce(
        envelope, body, items, reporting_mta=reporting_mta, service=SERVICE,
        attempt=attempt, now=now, action="delayed", retry_until=retry_until,
    )  # fmt: skip
    events = [
        Event(
            event_id=stable_event_id(envelope.message_id, EventKind.DELAYED, o.recipient),
            kind=EventKind.DELAYED,
            at=now,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            recipient=o.recipient,
            attempt=attempt,
            mx=o.mx,
            reply=o.reply,
            reason=f"delay warning {dsn.message_id} queued to <{envelope.mail_from}>",
            next_attempt_at=o.next_attempt_at,
            queued_seconds=round((now - envelope.received_at).total_seconds(), 3),
        )
        for o in warned
    ]
    return DelayWarning(data, dsn, [*events, sent])
