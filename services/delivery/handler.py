"""What the delivery service does with one message taken from ``deliver``.

0. Ask the control state (``gate``): a copy a done marker says was handled is
   dropped; a message an operator deleted, bounced or held is settled by
   ``operator`` without an attempt. Otherwise (no action, ``retry``,
   ``release``) it is attempted; a copy the flusher moved for that request
   (``postline-flush``) gets an ``operator`` event first.
1. Group the envelope's recipients by domain (malformed addresses bounce with
   ``553 5.1.3``) and run one attempt per domain concurrently: one SMTP
   transaction per domain, a reply per recipient (``engine``).
2. Settle each recipient (``outcome.settle``): delivered, bounced, deferred
   to the retry tier ``retry_schedule`` picks for this attempt, or expired
   once ``max_queue_lifetime`` since the first attempt is used up.
3. Hand off, and wait for every confirm: the message again with only the
   deferred recipients (``attempt + 1``, ``first_attempt_at`` kept) to the
   retry tier; recipients whose destination was busy (no session slot: the
   attempt never started) go back to the first tier with ``attempt``
   unchanged, so waiting for a slot uses up no step of the retry schedule
   (``max_queue_lifetime`` still bounds it); one DSN for the bounced/expired
   recipients whose ``NOTIFY`` allows it to ``submit`` (not for a null
   sender, not for a bounce, none for ``NOTIFY=NEVER``); one ``Action:
   relayed`` DSN for delivered recipients that asked ``NOTIFY=SUCCESS`` when
   the next hop did not take the DSN parameters over; the per-recipient,
   transcript and DSN events. Only then does the handler return, so the bus
   acks. Tier copies carry ``postline-due`` (their next attempt, epoch ms) for
   the flusher. A delay warning (``delaywarn``) goes with the hand-off when one
   is due; the retry copies are then marked ``delay_warned``.
   Every copy put in a tier (or held) gets a new ``postline-copy``.
4. A copy the flusher moved ends its hand-off with a done marker
   (``DoneMarker(id, attempt, request, copy)``), confirmed after everything
   else and before the ack: the original an interrupted flush left behind
   has the same id, attempt and copy, and is dropped when it comes back.

Trouble in the hand-off retries the publish, never the delivery
(``handoff``). A republished event keeps its event id, so audit drops a
copy that had landed after all. Only when every attempt failed does the
handler raise: the message is requeued and tried again (at least once;
duplicates then, or from a crash after a remote 250, nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial

from postline.bus import Bus, Delivery
from postline.control import (
    COPY_HEADER,
    DUE_HEADER,
    DoneMarker,
    OperatorAction,
    copy_of,
    new_copy_id,
    publish_control,
)
from postline.delivery import metrics, replies
from postline.delivery.delaywarn import delay_warning, warning_due
from postline.delivery.engine import Conversation, Engine
from postline.delivery.gate import ControlGate
from postline.delivery.handoff import Publish, hand_over
from postline.delivery.notices import Notice, attempt_notices
from postline.delivery.operator import (
    Operator,
    Verdict,
    announces,
    epoch_ms,
    flush_request,
    operator_event,
    verdict,
)
from postline.delivery.outcome import Outcome, conversation_events, recipient_events, settle
from postline.delivery.retry import RetryPlan, expires_at, plan_retry
from postline.delivery.route import domain_of
from postline.delivery.settings import DeliverySettings
from postline.delivery.transaction import Decision, Transaction
from postline.delivery.trouble import Phase
from postline.models import Envelope, Event, EventKind, utcnow
from postline.topology import Stage

log = logging.getLogger("postline.delivery")


def split_by_domain(recipients: tuple[str, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """Recipients grouped by domain (duplicates dropped), and the malformed ones."""
    groups: dict[str, list[str]] = {}
    malformed: list[str] = []
    for recipient in dict.fromkeys(recipients):
        domain = domain_of(recipient)
        if domain is None:
            malformed.append(recipient)
        else:
            groups.setdefault(domain, []).append(recipient)
    return groups, malformed


class DeliveryHandler:
    """Delivers each message through ``engine`` and hands the rest on through ``bus``."""

    def __init__(
        self,
        settings: DeliverySettings,
        engine: Engine,
        bus: Bus,
        gate: ControlGate,
        *,
        reporting_mta: str,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.gate = gate
        self.reporting_mta = reporting_mta
        self.operator = Operator(bus, settings.max_queue_lifetime, reporting_mta=reporting_mta)

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope()
        flush, copy = flush_request(delivery.headers), copy_of(delivery.headers)
        found = await self.gate.lookup(envelope, flush, copy)
        if found.duplicate:
            log.info("dropping a copy already handled", extra={"message_id": envelope.message_id})
            metrics.DUPLICATES_DROPPED.inc()
            metrics.MESSAGES.inc()
            return
        done: Publish | None = None
        if flush is not None:
            marker = DoneMarker(envelope.message_id, envelope.attempt, flush, copy)
            done = partial(publish_control, self.bus, marker)
        now, action = utcnow(), found.action
        decided = verdict(action, envelope, self.settings.max_queue_lifetime, now)
        if decided is Verdict.ATTEMPT:
            lead: list[Event] = []
            if action is not None and announces(action, flush):
                lead.append(operator_event(envelope, action, now))
            await self._deliver(envelope, delivery.body, lead, done)
            if action is not None and lead:
                metrics.OPERATOR_ACTIONS.labels(action.action).inc()
            return
        assert action is not None  # only an action settles without an attempt
        await self._settle(decided, action, envelope, delivery.body, done, now)

    async def _settle(
        self,
        decided: Verdict,
        action: OperatorAction,
        envelope: Envelope,
        body: bytes,
        done: Publish | None,
        now: datetime,
    ) -> None:
        """Apply an operator's delete, bounce or hold (or expire a held message)."""
        settlement = self.operator.settle(decided, action, envelope, body, now)
        await hand_over(settlement.publishes, envelope.message_id, done)
        metrics.OPERATOR_ACTIONS.labels(decided.value).inc()
        metrics.DSN_SENT.inc(settlement.dsns)
        metrics.MESSAGES.inc()
        log.info(
            "%s by operator %s: %s",
            decided.value,
            action.actor,
            action.reason or "no reason given",
            extra={"message_id": envelope.message_id, "request_id": action.request_id},
        )

    async def _deliver(
        self, envelope: Envelope, body: bytes, lead: list[Event], done: Publish | None
    ) -> None:
        """One attempt and its hand-off; ``lead`` events go first, ``done`` last."""
        attempt = envelope.attempt + 1
        first_attempt_at = envelope.first_attempt_at or utcnow()
        decisions, events = await self._attempt(envelope, body, attempt)
        now = utcnow()
        plan = self._plan(attempt, first_attempt_at, now)
        busy = self._plan(1, first_attempt_at, now)  # not counted: the shortest wait
        outcomes = [
            settle(
                recipient,
                decisions[recipient],
                plan if decisions[recipient].counted else busy,
                self.settings.max_queue_lifetime,
            )
            for recipient in dict.fromkeys(envelope.rcpt_to)
        ]
        events[:0] = [*lead, *recipient_events(envelope, attempt, outcomes, now)]
        deferred = [o for o in outcomes if o.kind is EventKind.DEFERRED]
        warn = bool(deferred) and warning_due(envelope, self.settings.delay_warning_after, now)
        publishes: list[Publish] = []
        for counted, tier_plan in ((True, plan), (False, busy)):
            group = tuple(
                o.recipient for o in deferred if decisions[o.recipient].counted is counted
            )
            if group:
                assert tier_plan.tier is not None and tier_plan.next_attempt_at is not None
                retry = envelope.model_copy(
                    update={
                        "rcpt_to": group,
                        "attempt": attempt if counted else envelope.attempt,
                        "first_attempt_at": first_attempt_at,
                        "delay_warned": envelope.delay_warned or warn,
                    }
                )
                due = {DUE_HEADER: epoch_ms(tier_plan.next_attempt_at), COPY_HEADER: new_copy_id()}
                publish = self.bus.publish_delayed
                publishes.append(partial(publish, Stage.DELIVER, tier_plan.tier, body, retry, due))
        notices = attempt_notices(
            envelope, body, outcomes, decisions, reporting_mta=self.reporting_mta,
            attempt=attempt, now=now,
        )  # fmt: skip
        if warn:
            notices += self._warning(envelope, body, deferred, attempt, first_attempt_at, now)
        for data, dsn, sent in notices:
            publishes.append(partial(self.bus.publish_stage, Stage.SUBMIT, data, dsn))
            events += sent
        publishes.append(partial(self.bus.publish_events, events))
        await hand_over(publishes, envelope.message_id, done)
        metrics.DSN_SENT.inc(len(notices))
        metrics.MESSAGES.inc()
        self._account(envelope, outcomes, now)

    def _warning(
        self,
        envelope: Envelope,
        body: bytes,
        deferred: list[Outcome],
        attempt: int,
        first_attempt_at: datetime,
        now: datetime,
    ) -> list[Notice]:
        """The delay warning for ``deferred`` (none if no recipient accepts one)."""
        until = expires_at(first_attempt_at, self.settings.max_queue_lifetime)
        warning = delay_warning(
            envelope, body, deferred, reporting_mta=self.reporting_mta,
            attempt=attempt, now=now, retry_until=until,
        )  # fmt: skip
        if warning is None:
            return []
        metrics.DELAY_WARNINGS.inc()
        return [(warning.data, warning.envelope, warning.events)]

    async def _attempt(
        self, envelope: Envelope, body: bytes, attempt: int
    ) -> tuple[dict[str, Decision], list[Event]]:
        groups, malformed = split_by_domain(envelope.rcpt_to)
        decisions = {r: Decision(replies.BAD_ADDRESS, Phase.ROUTE, None) for r in malformed}
        transactions = {
            domain: Transaction(
                envelope.mail_from,
                recipients,
                body,
                envelope.smtputf8,
                auth_user=envelope.auth_user,
                ret=envelope.ret,
                envid=envelope.envid,
                rcpt_params=dict(envelope.rcpt_params),
            )
            for domain, recipients in groups.items()
        }
        talks: list[list[Conversation]] = await asyncio.gather(
            *(self.engine.attempt(domain, tx) for domain, tx in transactions.items())
        )
        events: list[Event] = []
        for (domain, tx), conversations in zip(transactions.items(), talks, strict=True):
            for recipient in tx.recipients:
                decisions[recipient] = tx.decided.get(recipient) or Decision(
                    replies.SMTP_ERROR, tx.phase, tx.where
                )
            recipients = tuple(groups[domain])
            events += conversation_events(envelope, attempt, recipients, conversations)
        return decisions, events

    def _plan(self, attempt: int, first_attempt_at: datetime, now: datetime) -> RetryPlan:
        return plan_retry(
            self.settings.retry_schedule,
            self.settings.max_queue_lifetime,
            attempt,
            first_attempt_at,
            now,
        )

    def _account(self, envelope: Envelope, outcomes: list[Outcome], now: datetime) -> None:
        queued = (now - envelope.received_at).total_seconds()
        for outcome in outcomes:
            metrics.ATTEMPTS.labels(outcome.kind.value).inc()
            if outcome.kind is EventKind.DELIVERED:
                metrics.QUEUED_TO_DELIVERED.observe(max(queued, 0.0))
            log.info(
                "%s %s: %s",
                outcome.kind.value,
                outcome.recipient,
                outcome.reply,
                extra={
                    "message_id": envelope.message_id,
                    "mx_host": outcome.mx.label if outcome.mx else None,
                    "session_id": outcome.session_id,
                },
            )
