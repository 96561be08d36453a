"""The retry schedule picks the tier; max_queue_lifetime ends the retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postline.delivery.retry import plan_retry
from postline.values import parse_retry_schedule

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SCHEDULE = parse_retry_schedule("1m,5m*2,30m")
DAY = 86400.0


def test_attempt_number_picks_the_schedule_entry() -> None:
    tiers = [plan_retry(SCHEDULE, 5 * DAY, n, T0, T0).tier for n in range(1, 6)]
    assert tiers == ["1m", "5m", "5m", "30m", "30m"]  # the last entry repeats


def test_next_attempt_time_is_now_plus_the_wait() -> None:
    now = T0 + timedelta(hours=1)
    plan = plan_retry(SCHEDULE, 5 * DAY, 2, T0, now)
    assert plan.next_attempt_at == now + timedelta(minutes=5)
    assert not plan.expired


def test_expired_when_no_tier_fits_before_the_deadline() -> None:
    now = T0 + timedelta(seconds=5 * DAY - 30)
    plan = plan_retry(SCHEDULE, 5 * DAY, 40, T0, now)
    assert plan.expired
    assert plan.next_attempt_at is None


def test_last_attempt_is_pulled_in_to_fit_the_deadline() -> None:
    now = T0 + timedelta(seconds=5 * DAY - 400)  # 30m would overshoot, 5m fits
    plan = plan_retry(SCHEDULE, 5 * DAY, 40, T0, now)
    assert plan.tier == "5m"


def test_a_retry_exactly_at_the_deadline_is_allowed() -> None:
    schedule = parse_retry_schedule("1s")
    assert plan_retry(schedule, 3.0, 2, T0, T0 + timedelta(seconds=2)).tier == "1s"
    assert plan_retry(schedule, 3.0, 3, T0, T0 + timedelta(seconds=2.5)).expired
