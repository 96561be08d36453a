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

Passed: publish the ``filtered`` event, then the (possibly changed) message
to ``deliver`` with the same envelope. Rejected: one ``rejected`` event per
recipient (reply and reason, for the failure trail) and, unless the sender is
null or the message is itself a bounce, one DSN to the sender through
``submit`` with its ``dsn_sent`` event; nothing goes to ``deliver``.
Discarded: one ``discarded`` event per recipient (failure trail), no DSN.
Deferred: one ``deferred`` event per recipient, then the original bytes to
the retry tier ``postline.filter.deferral`` picks (back to ``submit`` when
its TTL ends); once ``defer_schedule`` is used up, ``Poison`` parks the
message. The handler returns (and the bus acks) only after those publishes
are confirmed; any other exception reaches the bus, which requeues.

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
from datetime import UTC
from typing import TypeVar

from postline.bus import Bus, Delivery, Poison, all_confirmed
from postline.dsn import FailedRecipient, bounce, wants_dsn
from postline.filter import metrics, replies
from postline.filter.api import Decision
from postline.filter.chain import Chain, Deadline, FilterDeferred, FilterTimeout, Outcome
from postline.filter.deferral import plan_defer
from postline.filter.message import (
    DEFAULT_LIMITS,
    FilterMessage,
    HeaderLimits,
    HeaderSectionTooLarge,
)
from postline.filter.outcomes import (
    SERVICE,
    deferred_events,
    discarded_events,
    filtered_event,
    rejected_events,
)
from postline.models import Envelope, Event, utcnow
from postline.topology import Stage
from postline.values import format_retry_schedule

__all__ = ["FilterHandler", "filtered_event", "rejected_events"]

T = TypeVar("T")
log = logging.getLogger("postline.filter")
DEFAULT_DEFER_SCHEDULE = (60.0, 300.0, 1800.0, 7200.0)
"""The tiers of the default ``[delivery] retry_schedule``, once each."""
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
        defer_schedule: tuple[float, ...] = DEFAULT_DEFER_SCHEDULE,
    ) -> None:
        self.chain = chain
        self.bus = bus
        self.reporting_mta = reporting_mta
        self.limits = limits
        self.defer_schedule = defer_schedule
        self.inline_limits = HeaderLimits(limits.max_size, min(limits.max_lines, INLINE_LINES))
        self._threads = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="postline-filter")

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope()
        try:
            outcome, data = await self._run(envelope, delivery.body)
        except FilterDeferred as deferred:
            await self._defer(envelope, delivery.body, deferred)
            return
        if data is not None:
            await self.bus.publish_events([filtered_event(envelope, outcome, len(data))])
            await self.bus.publish_stage(Stage.DELIVER, data, envelope)
            metrics.MESSAGES.labels(metrics.PASSED).inc()
            return
        if outcome.discarded:
            await self.bus.publish_events(discarded_events(envelope, outcome))
            metrics.MESSAGES.labels(metrics.DISCARDED).inc()
            log.info(
                "message discarded by filter %s: %s",
                outcome.decided_by,
                outcome.decision.reason,
                extra={"message_id": envelope.message_id},
            )
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

    async def _defer(self, envelope: Envelope, body: bytes, deferred: FilterDeferred) -> None:
        """The events, then the original bytes to the tier ``plan_defer`` picks; else park."""
        arrived = envelope.received_at
        if arrived.tzinfo is None:
            arrived = arrived.replace(tzinfo=UTC)
        plan = plan_defer(self.defer_schedule, arrived, utcnow())
        if plan is None:
            metrics.MESSAGES.labels(metrics.PARKED).inc()
            schedule = format_retry_schedule(self.defer_schedule)
            raise Poison(f"{deferred} (defer_schedule {schedule} used up)")
        events = deferred_events(
            envelope, deferred.name, deferred.decision, plan.step, plan.next_attempt_at
        )
        await self.bus.publish_events(events)
        await self.bus.publish_delayed(Stage.SUBMIT, plan.tier, body, envelope)
        metrics.MESSAGES.labels(metrics.DEFERRED).inc()
        log.warning(
            "%s; waiting in retry tier %s", deferred, plan.tier,
            extra={"message_id": envelope.message_id},
        )  # fmt: skip

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
        except FilterDeferred:
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
