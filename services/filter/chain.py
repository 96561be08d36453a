"""Runs the configured filters over one message, in order, each within a time limit.

``Chain.run`` returns an ``Outcome``: passed (every filter said ``CONTINUE``,
or one said ``ACCEPT``) or rejected (one said ``REJECT``). A ``DEFER``
verdict raises ``FilterDeferred`` and a filter running past ``timeout``
raises ``FilterTimeout``; both are ``TemporaryFilterFailure``, which the
service lets reach the bus so the message is requeued (and parked after
``[broker] delivery_limit`` deliveries). Any other exception from a filter
propagates unchanged (also a requeue; ``Poison`` parks at once).

The time limit cancels a filter at its next ``await``: a filter that burns
CPU without awaiting must move that work to a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from postline.filter import metrics
from postline.filter.api import Decision, Filter, Verdict
from postline.filter.message import FilterMessage


class TemporaryFilterFailure(Exception):
    """The message could not be filtered now; requeue it."""


class FilterTimeout(TemporaryFilterFailure):
    """A filter took longer than ``[filter] timeout``."""


class FilterDeferred(TemporaryFilterFailure):
    """A filter answered ``DEFER``."""

    def __init__(self, name: str, decision: Decision) -> None:
        super().__init__(f"filter {name} deferred the message: {decision.reason}")
        self.decision = decision


@dataclass(frozen=True)
class Outcome:
    """What the chain decided and which filters ran (in order, with their decisions)."""

    passed: bool
    decided_by: str | None
    decision: Decision
    ran: tuple[tuple[str, Decision], ...]

    def summary(self) -> str:
        """``headers (added Received, Date); other`` - for the trails."""
        parts = [f"{name} ({d.reason})" if d.reason else name for name, d in self.ran]
        return "filters: " + ("; ".join(parts) if parts else "none")


class Chain:
    """The filters of ``[filter] chain`` and the per-filter time limit."""

    def __init__(self, filters: Sequence[Filter], timeout: float) -> None:
        self.filters = tuple(filters)
        self.timeout = timeout

    async def run(self, message: FilterMessage) -> Outcome:
        ran: list[tuple[str, Decision]] = []
        for step in self.filters:
            decision = await self._apply(step, message)
            ran.append((step.name, decision))
            if decision.verdict is Verdict.CONTINUE:
                continue
            if decision.verdict is Verdict.DEFER:
                raise FilterDeferred(step.name, decision)
            passed = decision.verdict is Verdict.ACCEPT
            return Outcome(passed, step.name, decision, tuple(ran))
        return Outcome(True, None, Decision.proceed(), tuple(ran))

    async def _apply(self, step: Filter, message: FilterMessage) -> Decision:
        started = time.perf_counter()
        try:
            decision = await asyncio.wait_for(step.apply(message), self.timeout)
        except TimeoutError:
            raise FilterTimeout(f"filter {step.name} took longer than {self.timeout:g}s") from None
        finally:
            metrics.FILTER_SECONDS.labels(step.name).observe(time.perf_counter() - started)
        if not isinstance(decision, Decision):
            raise TypeError(f"filter {step.name} returned {type(decision).__name__}, not Decision")
        return decision
