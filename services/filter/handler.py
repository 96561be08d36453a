"""What the filter service does with one message taken from ``submit``.

Filtering - parsing the message, the chain, re-assembling it - runs within
one ``Deadline`` of ``[filter] timeout`` (``FilterTimeout``: requeued). A
message larger than ``INLINE_SIZE``, or with more than ``INLINE_LINES``
header lines, is parsed and re-assembled in the handler's own two threads so
the event loop keeps serving; the others are cheaper inline (tens of microseconds; at
most ``INLINE_LINES`` fields are parsed before the thread takes over). A
header section beyond ``[filter] max_header_size`` or ``max_header_lines``
is rejected like a ``REJECT`` (``554 5.6.0``, decided by ``header-limits``)
after bounded work: ingress refuses such messages, so this guards the
filter against any other source.

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

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from postline.bus import Bus, Delivery, Poison, all_confirmed
from postline.dsn import FailedRecipient, bounce, wants_dsn
from postline.filter import metrics, replies
from postline.filter.api import Decision
from postline.filter.chain import Chain, Deadline, FilterDeferred, FilterTimeout, Outcome
from postline.filter.message import (
    DEFAULT_LIMITS,
    FilterMessage,
    HeaderLimits,
    HeaderSectionTooLarge,
)
from postline.models import Envelope, Event, EventKind, stable_event_id, utcnow
from postline.topology import Stage

T = TypeVar("T")
log = logging.getLogger("postline.filter")
SERVICE = "filter"
HEADER_LIMITS = "header-limits"
"""``decided_by`` of a message refused for its header section (not a filter name)."""
INLINE_SIZE = 64 * 1024
INLINE_LINES = 1000
"""Messages of at most ``INLINE_SIZE`` bytes and ``INLINE_LINES`` header lines are parsed
and re-assembled on the event loop; the others in a worker thread."""
WORKER_THREADS = 2
"""Threads of the handler's own pool: parsing holds the GIL, so more would not help, and
its own pool keeps the default one (audit writes, AUTH checks) free."""


class FilterHandler:
    """Runs ``chain`` over each delivery and hands the result on through ``bus``."""

    def __init__(
        self,
        chain: Chain,
        bus: Bus,
        *,
        reporting_mta: str,
        limits: HeaderLimits = DEFAULT_LIMITS,
    ) -> None:
        self.chain = chain
        self.bus = bus
        self.reporting_mta = reporting_mta
        self.limits = limits
        self.inline_limits = HeaderLimits(limits.max_size, min(limits.max_lines, INLINE_LINES))
        self._threads = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="postline-filter")

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope()
        outcome, data = await self._run(envelope, delivery.body)
        if data is not None:
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
        failed = [FailedRecipient(e.recipient or "", e.reply or replies.REJECTED) for e in events]
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

    async def _run(self, envelope: Envelope, body: bytes) -> tuple[Outcome, bytes | None]:
        """``_filter``, counting and logging what made it fail."""
        extra = {"message_id": envelope.message_id}
        try:
            return await self._filter(envelope, body)
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

    async def _filter(self, envelope: Envelope, body: bytes) -> tuple[Outcome, bytes | None]:
        """Parse, run the chain, re-assemble, within one deadline; the bytes if passed."""
        deadline = Deadline(self.chain.timeout)
        try:
            message = await self._parse(envelope, body, deadline)
        except HeaderSectionTooLarge as error:
            return header_refusal(str(error)), None
        outcome = await self.chain.run(message, deadline)
        if not outcome.passed:
            return outcome, None
        if len(body) <= INLINE_SIZE:
            return outcome, message.to_bytes()
        data = await deadline.run("re-assembling the message", self._in_thread(message.to_bytes))
        return outcome, data

    async def _parse(self, envelope: Envelope, body: bytes, deadline: Deadline) -> FilterMessage:
        """Inline when small (see the module docstring), else in a thread; within ``deadline``."""
        if len(body) <= INLINE_SIZE:
            try:
                return FilterMessage(envelope, body, self.inline_limits)
            except HeaderSectionTooLarge:
                if self.inline_limits == self.limits:
                    raise
        parse = functools.partial(FilterMessage, envelope, body, self.limits)
        return await deadline.run("parsing the message", self._in_thread(parse))

    def _in_thread(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """``work()`` in the handler's pool; cancelling the future drops it if not started."""
        return asyncio.get_running_loop().run_in_executor(self._threads, work)


def header_refusal(reason: str) -> Outcome:
    """The rejected outcome of a message whose header section exceeds the limits."""
    decision = Decision.reject(reason, replies.HEADER_TOO_LARGE)
    return Outcome(False, HEADER_LIMITS, decision, ())


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
