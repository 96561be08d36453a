"""Operator actions (``postline queue``) as delivery applies them to a message from ``deliver``.

The control state (``gate``) gives the latest action on the message; only an
action issued after the message was received counts (``effective``).
``verdict`` then decides, purely:

* no action, ``retry`` or ``release``: the normal attempt (``ATTEMPT``). A copy
  the flusher moved for that very request (``postline-flush`` = its request
  id) first gets an ``operator`` event (``announces``);
* ``delete``: no attempt, no DSN, one ``operator`` event;
* ``bounce``: no attempt; a failure DSN whose per-recipient reply is
  ``550 5.0.0 bounced by operator: <reason>`` (not for ``<>`` nor a bounce,
  ``NOTIFY`` honoured), the ``operator`` and ``dsn_sent`` events;
* ``hold``: no attempt; the message goes to ``<ns>.held`` with the ``operator``
  event. Unless held with ``keep`` it carries ``postline-expires`` (its lifetime
  end, epoch ms) and an AMQP ``expiration`` of the lifetime left, after which
  the broker sends it back to ``deliver`` (a new ``postline-copy`` marks it as
  another copy than the one handled); a message whose action is ``hold``
  and whose lifetime (``first_attempt_at``, else ``received_at``, plus
  ``max_queue_lifetime``) is over expires (``EXPIRE``): ``expired`` events and
  a DSN, as an expiry after an attempt does, with reply ``HELD_EXPIRED``.

``Operator.settle`` turns a verdict other than ``ATTEMPT`` into the publishes
of its hand-off. Operator events carry the action, reason, actor and the
recipients still waiting; their id is ``stable_event_id(id, "operator",
request_id)``, so a copy handled twice repeats it (audit drops the second)
and audit can tell which messages a request reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from postline.bus import Bus
from postline.control import (
    COPY_HEADER,
    EXPIRES_HEADER,
    FLUSH_HEADER,
    OperatorAction,
    new_copy_id,
)
from postline.delivery.handoff import Publish
from postline.dsn import FailedRecipient, bounce, failure_notices
from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind, stable_event_id
from postline.reply import SmtpReply, reply
from postline.topology import Stage
from postline.values import format_duration

SERVICE = "delivery"
HELD_EXPIRED = reply(451, "4.4.7", "Held by the operator until the queue lifetime ended")


class Verdict(StrEnum):
    ATTEMPT = "attempt"
    DELETE = "delete"
    BOUNCE = "bounce"
    HOLD = "hold"
    EXPIRE = "expire"  # held past its lifetime


def flush_request(headers: Mapping[str, Any]) -> str | None:
    """The request id of a copy the flusher moved out of a queue (None: not moved)."""
    value = headers.get(FLUSH_HEADER)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def effective(action: OperatorAction | None, envelope: Envelope) -> OperatorAction | None:
    """``action`` if it was issued after the message was received (else it is not about it)."""
    return action if action is not None and action.at > envelope.received_at else None


def lifetime_end(envelope: Envelope, lifetime: float) -> datetime:
    """When the message's recipients expire: the first attempt (or receipt) plus ``lifetime``."""
    return (envelope.first_attempt_at or envelope.received_at) + timedelta(seconds=lifetime)


def verdict(
    action: OperatorAction | None, envelope: Envelope, lifetime: float, now: datetime
) -> Verdict:
    """What to do with the message given its effective ``action`` (module docstring)."""
    if action is None or action.action in ("retry", "release"):
        return Verdict.ATTEMPT
    if action.action == "hold" and not action.keep and now >= lifetime_end(envelope, lifetime):
        return Verdict.EXPIRE
    return Verdict(action.action)


def announces(action: OperatorAction | None, flush: str | None) -> bool:
    """This copy was moved for ``action``'s request: its attempt is the action's doing."""
    return action is not None and flush is not None and action.request_id == flush


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def bounced_reply(reason: str | None) -> SmtpReply:
    text = "bounced by operator" + (f": {reason}" if reason else "")
    return reply(550, "5.0.0", text)


def operator_event(envelope: Envelope, action: OperatorAction, now: datetime) -> Event:
    return Event(
        event_id=stable_event_id(envelope.message_id, "operator", action.request_id),
        kind=EventKind.OPERATOR,
        at=now,
        service=SERVICE,
        message_id=envelope.message_id,
        mail_from=envelope.mail_from,
        rcpt_to=envelope.rcpt_to,
        attempt=envelope.attempt,
        action=action.action,
        reason=action.reason,
        actor=action.actor,
    )


@dataclass
class Settlement:
    """The hand-off of a message settled by an operator action."""

    publishes: list[Publish] = field(default_factory=list)
    dsns: int = 0


class Operator:
    """Builds the hand-off of ``delete``, ``bounce``, ``hold`` and held-expiry verdicts."""

    def __init__(self, bus: Bus, lifetime: float, *, reporting_mta: str) -> None:
        self.bus = bus
        self.lifetime = lifetime
        self.reporting_mta = reporting_mta

    def settle(
        self,
        found: Verdict,
        action: OperatorAction,
        envelope: Envelope,
        body: bytes,
        now: datetime,
    ) -> Settlement:
        settlement = Settlement()
        events: list[Event] = []
        if found is Verdict.EXPIRE:
            events += self._expired(envelope, now)
            failed = [FailedRecipient(r, HELD_EXPIRED, None, True) for r in envelope.rcpt_to]
            self._dsn(settlement, events, envelope, body, failed, "E", now)
        else:
            events.append(operator_event(envelope, action, now))
        if found is Verdict.BOUNCE:
            failed = [FailedRecipient(r, bounced_reply(action.reason)) for r in envelope.rcpt_to]
            self._dsn(settlement, events, envelope, body, failed, "O", now)
        if found is Verdict.HOLD:
            settlement.publishes.append(self._hold(envelope, body, action.keep, now))
        settlement.publishes.append(partial(self.bus.publish_events, events))
        return settlement

    def _hold(self, envelope: Envelope, body: bytes, keep: bool, now: datetime) -> Publish:
        headers: dict[str, Any] = {
            ENVELOPE_HEADER: envelope.to_header(),
            COPY_HEADER: new_copy_id(),
        }
        expiration = None
        if not keep:
            end = lifetime_end(envelope, self.lifetime)
            headers[EXPIRES_HEADER] = epoch_ms(end)
            expiration = max((end - now).total_seconds(), 0.001)
        return partial(
            self.bus.publish_to_queue,
            self.bus.topology.held_queue,
            body,
            message_id=envelope.message_id,
            headers=headers,
            expiration=expiration,
        )

    def _expired(self, envelope: Envelope, now: datetime) -> list[Event]:
        reason = (
            f"expired: not delivered within {format_duration(self.lifetime)}; held by the operator"
        )
        return [
            Event(
                event_id=stable_event_id(
                    envelope.message_id, envelope.attempt, EventKind.EXPIRED, recipient
                ),
                kind=EventKind.EXPIRED,
                at=now,
                service=SERVICE,
                message_id=envelope.message_id,
                mail_from=envelope.mail_from,
                recipient=recipient,
                attempt=envelope.attempt,
                reply=HELD_EXPIRED,
                reason=reason,
                queued_seconds=round((now - envelope.received_at).total_seconds(), 3),
            )
            for recipient in dict.fromkeys(envelope.rcpt_to)
        ]

    def _dsn(
        self,
        settlement: Settlement,
        events: list[Event],
        envelope: Envelope,
        body: bytes,
        failed: list[FailedRecipient],
        tag: str,
        now: datetime,
    ) -> None:
        """Add the failure DSN for ``failed`` if the sender gets one."""
        if not envelope.mail_from or envelope.is_bounce or not failure_notices(envelope, failed):
            return
        data, dsn, sent = bounce(
            envelope, body, failed, reporting_mta=self.reporting_mta, service=SERVICE,
            attempt=envelope.attempt, now=now, tag=tag,
        )  # fmt: skip
        settlement.publishes.append(partial(self.bus.publish_stage, Stage.SUBMIT, data, dsn))
        settlement.dsns += 1
        events.append(sent)
