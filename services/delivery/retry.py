"""When a deferred recipient is tried again, or that it has waited long enough.

``plan_retry`` turns the attempt that just failed into a ``RetryPlan``:

* the wait is ``retry_schedule``'s entry for that attempt (the last entry
  repeats), and the tier queue is the one named after that wait
  (``postline.topology.tier_name``), so the broker holds the message for it;
* the deadline is ``first_attempt_at + max_queue_lifetime``. No attempt is
  ever scheduled past it: when the scheduled wait would overshoot, the
  longest tier that still fits is used for one last attempt near the
  deadline; when none fits, the recipient has expired.

So a recipient is tried for at most ``max_queue_lifetime`` and then expires;
it never sits in a tier queue beyond its deadline. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from postline.topology import tier_name
from postline.values import delay_for_attempt


@dataclass(frozen=True)
class RetryPlan:
    """``tier`` and ``next_attempt_at``, or ``expired`` (both None)."""

    tier: str | None
    next_attempt_at: datetime | None

    @property
    def expired(self) -> bool:
        return self.tier is None


def expires_at(first_attempt_at: datetime, lifetime: float) -> datetime:
    return first_attempt_at + timedelta(seconds=lifetime)


def plan_retry(
    schedule: tuple[float, ...],
    lifetime: float,
    attempt: int,
    first_attempt_at: datetime,
    now: datetime,
) -> RetryPlan:
    """The retry after failed attempt number ``attempt`` (1-based), made at ``now``."""
    deadline = expires_at(first_attempt_at, lifetime)
    delay = delay_for_attempt(schedule, attempt)
    if now + timedelta(seconds=delay) > deadline:
        fitting = [d for d in set(schedule) if now + timedelta(seconds=d) <= deadline]
        if not fitting:
            return RetryPlan(None, None)
        delay = max(fitting)
    return RetryPlan(tier_name(delay), now + timedelta(seconds=delay))
