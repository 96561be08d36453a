"""What the filter service does with one message taken from ``submit``.

Passed: publish the ``filtered`` event, then the (possibly re-headed) message
to ``deliver`` with the same envelope. Rejected: one ``rejected`` event per
recipient (reply and reason, for the failure trail) and, unless the sender is
null or the message is itself a bounce, one DSN to the sender through
``submit`` with its ``dsn_sent`` event; nothing goes to ``deliver``. The
handler returns (and the bus acks) only after those publishes are confirmed;
any exception reaches the bus, which requeues (``Poison``: parks).

The event is published before the message: if the deliver publish fails, the
redelivered message yields the same event again, and event ids are derived
from the message id so audit drops that duplicate. The other order would
turn a failed event publish into a second copy of the mail.
"""

from __future__ import annotations

import logging

from postline.bus import Bus, Delivery, Poison, all_confirmed
from postline.dsn import FailedRecipient, bounce, wants_dsn
from postline.filter import metrics, replies
from postline.filter.chain import Chain, FilterDeferred, FilterTimeout, Outcome
from postline.filter.message import FilterMessage
from postline.models import Envelope, Event, EventKind, stable_event_id, utcnow
from postline.topology import Stage

log = logging.getLogger("postline.filter")
SERVICE = "filter"


class FilterHandler:
    """Runs ``chain`` over each delivery and hands the result on through ``bus``."""

    def __init__(self, chain: Chain, bus: Bus, *, reporting_mta: str) -> None:
        self.chain = chain
        self.bus = bus
        self.reporting_mta = reporting_mta

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope()
        message = FilterMessage(envelope, delivery.body)
        outcome = await self._run(message)
        if outcome.passed:
            data = message.to_bytes()
            await self.bus.publish_events([filtered_event(envelope, outcome, len(data))])
            await self.bus.publish_stage(Stage.DELIVER, data, envelope)
            metrics.MESSAGES.labels(metrics.PASSED).inc()
            return
        events = rejected_events(envelope, outcome)
        if wants_dsn(envelope):
            await self._bounce(envelope, delivery.body, events)
        else:
            await self.bus.publish_events(events)
        metrics.MESSAGES.labels(metrics.REJECTED).inc()
        log.info(
            "message rejected by filter %s: %s",
            outcome.decided_by,
            outcome.decision.reason,
            extra={"message_id": envelope.message_id},
        )

    async def _bounce(self, envelope: Envelope, body: bytes, events: list[Event]) -> None:
        """Queue the DSN for the rejected recipients, with every event, all confirmed."""
        failed = [
            FailedRecipient(e.recipient or "", e.reply or replies.REJECTED, mx_host=None)
            for e in events
        ]
        data, dsn, sent = bounce(
            envelope, body, failed, reporting_mta=self.reporting_mta,
            service=SERVICE, attempt=envelope.attempt, now=utcnow(),
        )  # fmt: skip
        await all_confirmed(
            [
                self.bus.publish_events([*events, sent]),
                self.bus.publish_stage(Stage.SUBMIT, data, dsn),
            ]
        )

    async def _run(self, message: FilterMessage) -> Outcome:
        extra = {"message_id": message.envelope.message_id}
        try:
            return await self.chain.run(message)
        except FilterDeferred as error:
            metrics.MESSAGES.labels(metrics.DEFERRED).inc()
            log.warning("%s; requeued", error, extra=extra)
            raise
        except FilterTimeout as error:
            metrics.MESSAGES.labels(metrics.TIMEOUT).inc()
            log.warning("%s; requeued", error, extra=extra)
            raise
        except Poison:
            raise
        except Exception:
            metrics.MESSAGES.labels(metrics.FAILED).inc()
            raise


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
