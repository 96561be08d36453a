"""What the delivery service does with one message taken from ``deliver``.

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
   acks.

Once a remote server has accepted, a requeue would deliver the mail again,
so trouble in the hand-off retries the publish, never the delivery: each
publish that fails is sent again on its own (``HAND_OFF_ATTEMPTS`` times in
all, backing off from ``HAND_OFF_BACKOFF`` seconds), while the bus keeps
waiting for a confirm that is merely late (a stalled broker) instead of
giving up on it. A republished event keeps its event id, so audit drops a
copy that had landed after all. Only when every attempt failed does the
handler raise: the message is requeued and tried again (at least once;
duplicates then, or from a crash after a remote 250, nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from postline.bus import Bus, Delivery, PublishError, all_confirmed
from postline.delivery import metrics, replies
from postline.delivery.engine import Conversation, Engine
from postline.delivery.outcome import (
    SERVICE,
    Outcome,
    conversation_events,
    recipient_events,
    settle,
)
from postline.delivery.retry import RetryPlan, plan_retry
from postline.delivery.route import domain_of
from postline.delivery.settings import DeliverySettings
from postline.delivery.transaction import Decision, Transaction
from postline.delivery.trouble import Phase
from postline.dsn import FailedRecipient, bounce, failure_notices, wants_success_notice
from postline.models import Envelope, Event, EventKind, utcnow
from postline.topology import Stage

log = logging.getLogger("postline.delivery")
HAND_OFF_ATTEMPTS = 4
HAND_OFF_BACKOFF = 1.0
Publish = Callable[[], Awaitable[None]]


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
        self, settings: DeliverySettings, engine: Engine, bus: Bus, *, reporting_mta: str
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.reporting_mta = reporting_mta

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope()
        attempt = envelope.attempt + 1
        first_attempt_at = envelope.first_attempt_at or utcnow()
        decisions, events = await self._attempt(envelope, delivery.body, attempt)
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
        events[:0] = recipient_events(envelope, attempt, outcomes, now)
        publishes: list[Publish] = []
        for counted, tier_plan in ((True, plan), (False, busy)):
            deferred = tuple(
                o.recipient
                for o in outcomes
                if o.kind is EventKind.DEFERRED and decisions[o.recipient].counted is counted
            )
            if deferred:
                assert tier_plan.tier is not None
                retry = envelope.model_copy(
                    update={
                        "rcpt_to": deferred,
                        "attempt": attempt if counted else envelope.attempt,
                        "first_attempt_at": first_attempt_at,
                    }
                )
                tier = tier_plan.tier
                publishes.append(
                    partial(self.bus.publish_delayed, Stage.DELIVER, tier, delivery.body, retry)
                )
        notices = self._notices(envelope, delivery.body, outcomes, decisions, attempt, now)
        for data, dsn, sent in notices:
            publishes.append(partial(self.bus.publish_stage, Stage.SUBMIT, data, dsn))
            events.append(sent)
        publishes.append(partial(self.bus.publish_events, events))
        await all_confirmed([hand_off(publish, envelope.message_id) for publish in publishes])
        for _ in notices:
            metrics.DSN_SENT.inc()
        metrics.MESSAGES.inc()
        self._account(envelope, outcomes, now)

    def _notices(
        self,
        envelope: Envelope,
        body: bytes,
        outcomes: list[Outcome],
        decisions: dict[str, Decision],
        attempt: int,
        now: datetime,
    ) -> list[tuple[bytes, Envelope, Event]]:
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
            notices.append(self._dsn(envelope, body, failed, attempt, now, "failed"))
        relayed = [
            FailedRecipient(o.recipient, o.reply, o.mx)
            for o in outcomes
            if o.kind is EventKind.DELIVERED
            and not decisions[o.recipient].dsn_passed
            and wants_success_notice(envelope, o.recipient)
        ]
        if relayed:
            notices.append(self._dsn(envelope, body, relayed, attempt, now, "relayed"))
        return notices

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

    def _dsn(
        self,
        envelope: Envelope,
        body: bytes,
        items: list[FailedRecipient],
        attempt: int,
        now: datetime,
        action: str,
    ) -> tuple[bytes, Envelope, Event]:
        """A DSN for ``items`` (``action``: failed or relayed), its envelope and its event."""
        return bounce(
            envelope, body, items, reporting_mta=self.reporting_mta,
            service=SERVICE, attempt=attempt, now=now, action=action,
        )  # fmt: skip

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


async def hand_off(publish: Publish, message_id: str) -> None:
    """``publish`` until confirmed: retried with backoff, raising after the last attempt."""
    delay = HAND_OFF_BACKOFF
    for attempt in range(1, HAND_OFF_ATTEMPTS + 1):
        try:
            await publish()
            return
        except PublishError as error:
            if attempt == HAND_OFF_ATTEMPTS:
                raise
            log.warning(
                "hand-off publish failed (%s); trying it again in %gs, not the delivery",
                error,
                delay,
                extra={"message_id": message_id},
            )
        await asyncio.sleep(delay)
        delay *= 2
