"""The events the filter service publishes for a message, by outcome.

* passed: one message-level ``filtered`` event (queue trail);
* rejected: one ``rejected`` event per recipient (failure trail), with the reply;
* discarded: one ``discarded`` event per recipient (failure trail), no reply:
  the message was dropped on purpose and no DSN goes out;
* deferred: one ``deferred`` event per recipient (queue trail), with the reply,
  the retry tier's return time and the deferral's position in the schedule.

Event ids are derived from the message id (and the recipient, and for a
deferral its position), so the same events published again after a
redelivery are dropped by audit. Pure functions.
"""

from __future__ import annotations

from datetime import datetime

from postline.filter import replies
from postline.filter.api import Decision
from postline.filter.chain import Outcome
from postline.models import Envelope, Event, EventKind, stable_event_id

SERVICE = "filter"


def filtered_event(envelope: Envelope, outcome: Outcome, size: int) -> Event:
    return Event(
        event_id=stable_event_id(envelope.message_id, EventKind.FILTERED, ""),  # no recipient
        kind=EventKind.FILTERED,
        service=SERVICE,
        message_id=envelope.message_id,
        mail_from=envelope.mail_from,
        rcpt_to=envelope.rcpt_to,
        attempt=envelope.attempt,
        reason=outcome.summary(),
        size=size,
        client_ip=envelope.client_ip,
    )


def rejected_events(envelope: Envelope, outcome: Outcome) -> list[Event]:
    decision = outcome.decision
    reason = f"rejected by filter {outcome.decided_by}"
    if decision.reason:
        reason += f": {decision.reason}"
    return [
        Event(
            event_id=stable_event_id(envelope.message_id, EventKind.REJECTED, recipient),
            kind=EventKind.REJECTED,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            recipient=recipient,
            attempt=envelope.attempt,
            reply=decision.reply or replies.REJECTED,
            reason=reason,
            client_ip=envelope.client_ip,
        )
        for recipient in envelope.rcpt_to
    ]


def discarded_events(envelope: Envelope, outcome: Outcome) -> list[Event]:
    reason = f"discarded by filter {outcome.decided_by}"
    if outcome.decision.reason:
        reason += f": {outcome.decision.reason}"
    return [
        Event(
            event_id=stable_event_id(envelope.message_id, EventKind.DISCARDED, recipient),
            kind=EventKind.DISCARDED,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            recipient=recipient,
            attempt=envelope.attempt,
            reason=reason,
            client_ip=envelope.client_ip,
        )
        for recipient in envelope.rcpt_to
    ]


def deferred_events(
    envelope: Envelope, name: str, decision: Decision, step: int, next_attempt_at: datetime
) -> list[Event]:
    reason = f"deferred by filter {name} (deferral {step + 1})"
    if decision.reason:
        reason += f": {decision.reason}"
    return [
        Event(
            event_id=stable_event_id(
                envelope.message_id, EventKind.DEFERRED, "filter", step, recipient
            ),
            kind=EventKind.DEFERRED,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            recipient=recipient,
            attempt=envelope.attempt,
            reply=decision.reply or replies.DEFERRED,
            reason=reason,
            next_attempt_at=next_attempt_at,
            client_ip=envelope.client_ip,
        )
        for recipient in envelope.rcpt_to
    ]
