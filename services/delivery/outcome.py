"""Per-recipient outcomes of one attempt, and the events that record them.

``settle`` turns each recipient's ``Decision`` (the reply, where it was given
and whether it is the remote's own words) into an ``Outcome``: delivered,
bounced, deferred (with the retry tier and time) or expired, using
``trouble.verdict`` (the one place that decides: only a 2xx after the final
dot delivers) and ``retry.plan_retry``. The reason says where, and says
"remote replied" only when the reply is the remote's own; a timeout, a lost
connection or a protocol error reads ``failed at RCPT TO`` / ``failed after
end of data`` (the reply says which).

The event builders fill every ``Event`` field the audit trails show:
recipient, sender, attempt, the MX (``mx``, a ``Peer``), the session
(``session_id``, ``tls``), the remote's reply, a reason, the next attempt
time and the seconds since ingress accepted the message. All of it is data;
no ``name[ip]:port`` string is put in an event (readers render it). Event ids
of recipient outcomes are derived from message id, attempt, kind and
recipient, so a redelivered message that reaches the same outcome repeats the
same ids (audit drops the duplicates); an attempt that did not count
(destination busy: the next one has the same number) adds its time. Each
transcript is its own event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from postline.delivery.engine import Conversation
from postline.delivery.retry import RetryPlan
from postline.delivery.transaction import Decision, Where
from postline.delivery.trouble import Phase, Verdict, at, verdict
from postline.models import Envelope, Event, EventKind, Peer, TlsInfo, stable_event_id
from postline.reply import SmtpReply
from postline.values import format_duration

SERVICE = "delivery"

_FIXED = {
    Phase.ROUTE: "no usable route",
    Phase.DNS: "DNS lookup failed",
    Phase.POLICY: "transport security policy",
    Phase.CONNECT: "could not connect",
    Phase.STARTTLS: "TLS failed",
    Phase.AUTH: "smarthost authentication failed",
    Phase.QUEUE: "destination busy",
}
_REPLIED = {  # the remote's own reply
    Phase.GREETING: "refused at greeting",
    Phase.EHLO: "refused at EHLO",
    Phase.MAIL: "remote replied to MAIL FROM",
    Phase.RCPT: "remote replied to RCPT TO",
    Phase.DATA: "remote replied to DATA",
    Phase.END_OF_DATA: "remote replied to end of data",
}


def reason_of(decision: Decision) -> str:
    """Where and how: ``remote replied to RCPT TO``, or ``failed after end of data`` when
    the reply is not the remote's own (a timeout, a lost connection, a protocol error)."""
    fixed = _FIXED.get(decision.phase)
    if fixed is not None:
        return fixed
    if decision.remote:
        return _REPLIED[decision.phase]
    return f"failed {at(decision.phase)}"


@dataclass(frozen=True)
class Outcome:
    recipient: str
    kind: EventKind
    reply: SmtpReply
    where: Where | None
    reason: str
    next_attempt_at: datetime | None = None
    counted: bool = True  # False: the attempt never started (destination busy)

    @property
    def mx(self) -> Peer | None:
        return self.where.mx if self.where else None

    @property
    def session_id(self) -> str | None:
        return self.where.session_id if self.where else None

    @property
    def tls(self) -> TlsInfo | None:
        return self.where.tls if self.where else None


def settle(recipient: str, decision: Decision, plan: RetryPlan, lifetime: float) -> Outcome:
    """The outcome of ``decision`` given the retry ``plan`` for this attempt."""
    how = reason_of(decision)
    found = verdict(decision.reply, decision.phase)
    if found is Verdict.DELIVERED:
        return Outcome(recipient, EventKind.DELIVERED, decision.reply, decision.where, how)
    if found is Verdict.BOUNCED:
        return Outcome(recipient, EventKind.BOUNCED, decision.reply, decision.where, how)
    if plan.expired:
        reason = f"expired: not delivered within {format_duration(lifetime)}; last: {how}"
        return Outcome(recipient, EventKind.EXPIRED, decision.reply, decision.where, reason)
    uncounted = "" if decision.counted else ", attempt not counted"
    return Outcome(
        recipient,
        EventKind.DEFERRED,
        decision.reply,
        decision.where,
        f"{how}; retry via tier {plan.tier}{uncounted}",
        plan.next_attempt_at,
        decision.counted,
    )


def recipient_events(
    envelope: Envelope, attempt: int, outcomes: Iterable[Outcome], now: datetime
) -> list[Event]:
    queued = (now - envelope.received_at).total_seconds()
    return [
        Event(
            event_id=stable_event_id(
                envelope.message_id, attempt, outcome.kind, outcome.recipient, *_again(outcome, now)
            ),
            kind=outcome.kind,
            at=now,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            recipient=outcome.recipient,
            attempt=attempt,
            mx=outcome.mx,
            session_id=outcome.session_id,
            tls=outcome.tls,
            reply=outcome.reply,
            reason=None if outcome.kind is EventKind.DELIVERED else outcome.reason,
            next_attempt_at=outcome.next_attempt_at,
            queued_seconds=round(queued, 3),
        )
        for outcome in outcomes
    ]


def _again(outcome: Outcome, now: datetime) -> tuple[str, ...]:
    """An uncounted attempt repeats its attempt number: its time keeps its event apart."""
    return () if outcome.counted else ("busy", now.isoformat())


def conversation_events(
    envelope: Envelope,
    attempt: int,
    recipients: tuple[str, ...],
    conversations: Iterable[Conversation],
) -> list[Event]:
    return [
        Event(
            kind=EventKind.CONVERSATION,
            service=SERVICE,
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            rcpt_to=recipients,
            attempt=attempt,
            mx=talk.where.mx,
            session_id=talk.where.session_id,
            tls=talk.where.tls,
            transcript=list(talk.lines),
        )
        for talk in conversations
    ]
