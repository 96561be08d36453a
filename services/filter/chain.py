"""Runs the configured filters over one message, in order, within one time budget.

``Chain.run`` returns an ``Outcome``: passed (every filter said ``CONTINUE``,
or one said ``ACCEPT``), rejected (one said ``REJECT``) or discarded (one
said ``DISCARD``). A ``DEFER`` verdict raises ``FilterDeferred`` (the handler
sends the message to a retry tier) and running out of time ``FilterTimeout``
(below; the handler lets it reach the bus, which requeues, and parks after
``[broker] delivery_limit`` deliveries). Any other exception from a filter
propagates unchanged (also a requeue; ``Poison`` parks at once), except
``MimeTooComplex``: a filter that finds the MIME structure beyond the
limits rejects the message (``554 5.6.0``), as an oversized header does.

Every decision is counted in ``postline_filter_decisions_total`` by filter
and verdict (``error`` when the filter raised, ``timeout`` when the budget
ended in it).

``[filter] timeout`` is one ``Deadline`` per message, not per filter: the
handler starts it before parsing and spends it on the parse, on every filter
(``Chain.run(message, deadline)``) and on re-assembly; whatever step is
running when it ends raises ``FilterTimeout``, naming that step.
Without a deadline, ``run`` starts one of ``timeout`` seconds for the chain.
The deadline cancels a step at its next ``await``: a filter that burns CPU
without awaiting must move that work to a thread (``asyncio.to_thread``).
Each filter's own time still goes to ``postline_filter_duration_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from postline.filter import metrics, replies
from postline.filter.api import Decision, Filter, Verdict
from postline.filter.message import FilterMessage
from postline.filter.mime import MimeTooComplex

T = TypeVar("T")


class TemporaryFilterFailure(Exception):
    """The message could not be filtered now; requeue it."""


class FilterTimeout(TemporaryFilterFailure):
    """Handling one message took longer than ``[filter] timeout``."""


class FilterDeferred(TemporaryFilterFailure):
    """A filter answered ``DEFER``."""

    def __init__(self, name: str, decision: Decision) -> None:
        super().__init__(f"filter {name} deferred the message: {decision.reason}")
        self.name = name
        self.decision = decision


class Deadline:
    """The end of one message's ``[filter] timeout``, started when it is made."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at = asyncio.get_running_loop().time() + timeout

    async def run(self, step: str, work: Awaitable[T]) -> T:
        """``await work``, cancelled at the deadline: ``FilterTimeout`` naming ``step``."""
        try:
            async with asyncio.timeout_at(self.at) as scope:
                return await work
        except TimeoutError:
            if not scope.expired():
                raise  # the step's own timeout, not the budget's
            raise FilterTimeout(
                f"{step} ran past the message's {self.timeout:g}s [filter] timeout"
            ) from None


@dataclass(frozen=True)
class Outcome:
    """What the chain decided and which filters ran (in order, with their decisions)."""

    passed: bool
    decided_by: str | None
    decision: Decision
    ran: tuple[tuple[str, Decision], ...]

    @property
    def discarded(self) -> bool:
        return self.decision.verdict is Verdict.DISCARD

    def summary(self) -> str:
        """``headers (added Received, Date); other`` - for the trails."""
        parts = [f"{name} ({d.reason})" if d.reason else name for name, d in self.ran]
        return "filters: " + ("; ".join(parts) if parts else "none")


class Chain:
    """The filters of ``[filter] chain`` and the time budget of one message."""

    def __init__(self, filters: Sequence[Filter], timeout: float) -> None:
        self.filters = tuple(filters)
        self.timeout = timeout

    async def run(self, message: FilterMessage, deadline: Deadline | None = None) -> Outcome:
        """Every filter in order, all before ``deadline`` (default: ``timeout`` from now)."""
        if deadline is None:
            deadline = Deadline(self.timeout)
        ran: list[tuple[str, Decision]] = []
        for step in self.filters:
            decision = await self._apply(step, message, deadline)
            ran.append((step.name, decision))
            if decision.verdict is Verdict.CONTINUE:
                continue
            if decision.verdict is Verdict.DEFER:
                raise FilterDeferred(step.name, decision)
            passed = decision.verdict is Verdict.ACCEPT
            return Outcome(passed, step.name, decision, tuple(ran))
        return Outcome(True, None, Decision.proceed(), tuple(ran))

    async def _apply(self, step: Filter, message: FilterMessage, deadline: Deadline) -> Decision:
        started = time.perf_counter()
        try:
            decision = await deadline.run(f"filter {step.name}", step.apply(message))
        except MimeTooComplex as error:
            decision = Decision.reject(str(error), replies.MIME_TOO_COMPLEX)
        except FilterTimeout:
            metrics.DECISIONS.labels(step.name, "timeout").inc()
            raise
        except Exception:
            metrics.DECISIONS.labels(step.name, "error").inc()
            raise
        finally:
            metrics.FILTER_SECONDS.labels(step.name).observe(time.perf_counter() - started)
        if not isinstance(decision, Decision):  # a filter outside the type checker's sight
            metrics.DECISIONS.labels(step.name, "error").inc()  # type: ignore[unreachable]
            raise TypeError(f"filter {step.name} returned {type(decision).__name__}, not Decision")
        metrics.DECISIONS.labels(step.name, decision.verdict.value).inc()
        return decision
