"""The DSNs one attempt owes the sender: failure and success (relayed) notices.

``attempt_notices`` gives, for a real sender of a message that is not itself a
bounce, one failure DSN for the recipients that bounced or expired whose
``NOTIFY`` allows it, and one ``Action: relayed`` DSN for delivered recipients
that asked ``NOTIFY=SUCCESS`` when the next hop did not take the DSN
parameters over. Each ``Notice`` is the DSN's bytes, its envelope and the
events that record it. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from postline.delivery.outcome import SERVICE, Outcome
from postline.delivery.transaction import Decision
from postline.dsn import FailedRecipient, bounce, failure_notices, wants_success_notice
from postline.models import Envelope, Event, EventKind

Notice = tuple[bytes, Envelope, list[Event]]


def attempt_notices(
    envelope: Envelope,
    body: bytes,
    outcomes: Sequence[Outcome],
    decisions: dict[str, Decision],
    *,
    reporting_mta: str,
    attempt: int,
    now: datetime,
) -> list[Notice]:
    """The failure DSN and the success (relayed) DSN this attempt owes the sender."""
    if not envelope.mail_from or envelope.is_bounce:
        return []
    notices = []
    failed = [
        FailedRecipient(o.recipient, o.reply, o.mx, o.kind is EventKind.EXPIRED)
        for o in outcomes
        if o.kind in (EventKind.BOUNCED, EventKind.EXPIRED)
    ]
    if failure_notices(envelope, failed):
        notices.append(_dsn(envelope, body, failed, reporting_mta, attempt, now, "failed"))
    relayed = [
        FailedRecipient(o.recipient, o.reply, o.mx)
        for o in outcomes
        if o.kind is EventKind.DELIVERED
        and not decisions[o.recipient].dsn_passed
        and wants_success_notice(envelope, o.recipient)
    ]
    if relayed:
        notices.append(_dsn(envelope, body, relayed, reporting_mta, attempt, now, "relayed"))
    return notices


def _dsn(
    envelope: Envelope,
    body: bytes,
    items: list[FailedRecipient],
    reporting_mta: str,
    attempt: int,
    now: datetime,
    action: str,
) -> Notice:
    """A DSN for ``items`` (``action``: failed or relayed), its envelope and its event."""
    data, dsn, sent = bounce(
        envelope, body, items, reporting_mta=reporting_mta,
        service=SERVICE, attempt=attempt, now=now, action=action,
    )  # fmt: skip
    return data, dsn, [sent]
