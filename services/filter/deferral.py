"""Where a message a filter deferred waits, and when it has waited enough.

A ``DEFER`` sends the message (its original bytes: header edits of the
attempt are dropped) to a retry tier of the topology, from which RabbitMQ
returns it to ``submit`` when the tier's TTL ends; it is then filtered again.
The waits are ``[filter] defer_schedule`` (default: every tier of the
topology once, shortest first, which ``[delivery] retry_schedule`` defines).

The filter keeps no count of its deferrals (the envelope has no field for
it, and the state of a message is the queue it sits in): the position in the
schedule is read from the time since the message arrived (``received_at``).
Deferral *i* (0-based) is the first whose cumulative wait is still ahead:
waits 1m, 5m, 30m put a message deferred at arrival in 1m, the same message
deferred again a minute later in 5m, and so on. Once the time since arrival
passes the schedule's total, the plan is ``None`` and the handler parks the
message (``Poison``): mail is never dropped, and never retried for ever.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from postline.topology import tier_name
from postline.values import format_retry_schedule, parse_duration


@dataclass(frozen=True)
class DeferPlan:
    """The tier to wait in, the deferral's position in the schedule and when it returns."""

    tier: str
    step: int
    next_attempt_at: datetime


def default_schedule(tiers: Sequence[str]) -> tuple[float, ...]:
    """Every tier of the topology once, shortest first."""
    return tuple(sorted(parse_duration(tier) for tier in tiers))


def checked_schedule(schedule: Sequence[float] | None, tiers: Sequence[str]) -> tuple[float, ...]:
    """``schedule`` (or the default) if every wait is a tier; else ``ValueError`` naming one."""
    if not tiers:
        raise ValueError("the topology has no retry tiers")
    chosen = tuple(schedule) if schedule else default_schedule(tiers)
    for delay in chosen:
        if tier_name(delay) not in tiers:
            raise ValueError(
                f"{format_retry_schedule(chosen)}: {tier_name(delay)} is not a retry tier; the "
                f"tiers are {', '.join(tiers)} (from [delivery] retry_schedule)"
            )
    return chosen


def plan_defer(schedule: Sequence[float], received_at: datetime, now: datetime) -> DeferPlan | None:
    """The wait for a message deferred at ``now`` (module docstring); ``None``: used up."""
    elapsed = (now - received_at).total_seconds()
    for step, (delay, ahead) in enumerate(zip(schedule, accumulate(schedule), strict=True)):
        if elapsed < ahead:
            return DeferPlan(tier_name(delay), step, now + timedelta(seconds=delay))
    return None
