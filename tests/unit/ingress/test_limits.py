"""Session counters, message-rate buckets, AUTH failure budgets and lockouts (fake clock)."""

from __future__ import annotations

import pytest

from postline.ingress import limits
from postline.ingress.limits import FailureTracker, RateLimiter, RecentFailures, SessionCounter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_counter_limits_total_and_per_client() -> None:
    counter = SessionCounter(max_total=3, max_per_client=2)
    assert counter.admit_total() and counter.admit_total() and counter.admit_total()
    assert not counter.admit_total()
    counter.release_total()
    assert counter.admit_total()
    assert counter.admit_client("a") and counter.admit_client("a")
    assert not counter.admit_client("a")
    assert counter.admit_client("b")
    counter.release_client("a")
    assert counter.admit_client("a")


def test_rate_limiter_refills_over_the_window() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=3, window=60, clock=clock)
    assert [limiter.allow("ip") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    clock.now += 20  # one token back (3 per 60 s)
    assert limiter.allow("ip")
    assert not limiter.allow("ip")


def test_rate_zero_means_unlimited() -> None:
    limiter = RateLimiter(rate=0, window=60)
    assert all(limiter.allow("ip") for _ in range(10_000))


def test_failures_within_the_window_lock_out_then_expire() -> None:
    clock = Clock()
    tracker = FailureTracker(max_failures=3, window=60, lockout=300, clock=clock)
    assert not tracker.failed("ip")
    assert not tracker.failed("ip")
    assert tracker.failed("ip"), "the third failure starts the lockout"
    assert tracker.locked("ip") and not tracker.locked("other")
    clock.now += 299
    assert tracker.locked("ip")
    clock.now += 2
    assert not tracker.locked("ip")


def test_old_failures_and_successes_do_not_count() -> None:
    clock = Clock()
    tracker = FailureTracker(max_failures=2, window=60, lockout=300, clock=clock)
    tracker.failed("ip")
    clock.now += 61
    assert not tracker.failed("ip"), "the first failure left the window"
    tracker.succeeded("ip")
    assert not tracker.failed("ip"), "a success clears the count"


def test_a_full_rate_table_forgets_idle_buckets_first_then_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_KEYS", 3)
    clock = Clock()
    limiter = RateLimiter(rate=2, window=60, clock=clock)  # one token back every 30 s
    assert [limiter.allow("a"), limiter.allow("a"), limiter.allow("b")] == [True] * 3
    assert [limiter.allow("c"), limiter.allow("c")] == [True] * 2
    clock.now += 31  # b is full again (idle); a and c are not
    assert limiter.allow("d")
    assert [limiter.allow("a"), limiter.allow("a")] == [True, False], "a, the oldest, was kept"
    assert limiter.allow("e"), "nothing idle: the oldest (a) makes room"
    assert [limiter.allow("a"), limiter.allow("a")] == [True, True], "a starts again full"


def test_a_full_failure_table_forgets_quiet_keys_first_then_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_KEYS", 2)
    clock = Clock()
    tracker = FailureTracker(max_failures=2, window=60, lockout=300, clock=clock)
    tracker.failed("a")
    clock.now += 1
    tracker.failed("b")
    clock.now += 64
    assert not tracker.failed("a"), "a's first failure left the window"
    assert not tracker.failed("c"), "b is quiet (nothing within the window): it makes room"
    assert tracker.failed("a"), "a, the oldest key, kept its failure: this one locks it"
    assert not tracker.failed("d")
    clock.now += 1
    assert not tracker.failed("e"), "nothing quiet: the oldest (c) makes room"
    assert not tracker.failed("c"), "c starts again from no failures"


def test_a_full_lockout_table_forgets_expired_lockouts_first_then_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_KEYS", 3)
    clock = Clock()
    tracker = FailureTracker(max_failures=1, window=60, lockout=100, clock=clock)
    assert tracker.failed("a")
    clock.now += 10
    assert tracker.failed("b")
    clock.now += 10
    assert tracker.failed("a"), "a, the oldest entry, is locked again until 120"
    clock.now += 10
    assert tracker.failed("c")
    clock.now += 85  # b's lockout (until 110) is over; a's and c's are not
    assert tracker.failed("d")
    assert tracker.locked("a"), "the expired lockout (b) made room, not the oldest"
    assert tracker.failed("e")
    assert not tracker.locked("a"), "nothing expired: the oldest lockout (a) makes room"
    assert tracker.locked("c") and tracker.locked("d") and tracker.locked("e")


def test_checks_in_progress_count_toward_the_limit_until_they_end() -> None:
    clock = Clock()
    tracker = FailureTracker(max_failures=3, window=60, lockout=300, clock=clock)
    assert tracker.reserve("ip") and tracker.reserve("ip") and tracker.reserve("ip")
    assert tracker.full("ip") and not tracker.reserve("ip"), "three checks in progress"
    assert not tracker.locked("ip"), "reservations alone never lock"
    tracker.release("ip")  # one succeeded
    assert not tracker.full("ip") and tracker.reserve("ip")
    assert not tracker.failed("ip") and not tracker.failed("ip")
    assert not tracker.reserve("ip"), "two failures and one check in progress"
    assert tracker.failed("ip"), "the third failure locks"
    assert tracker.locked("ip") and not tracker.reserve("ip")
    clock.now += 301
    assert tracker.reserve("ip"), "the lockout is over and the failures are forgotten"


def test_failures_leaving_the_window_free_the_budget() -> None:
    clock = Clock()
    tracker = FailureTracker(max_failures=2, window=60, lockout=300, clock=clock)
    assert tracker.reserve("ip") and not tracker.failed("ip")
    assert tracker.reserve("ip")
    assert tracker.full("ip")
    clock.now += 61
    assert not tracker.full("ip"), "only the check in progress still counts"
    tracker.succeeded("ip")
    assert tracker.reserve("ip") and tracker.full("ip"), "a success keeps the other reservation"


def test_a_full_failure_table_keeps_keys_with_checks_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_KEYS", 2)
    clock = Clock()
    tracker = FailureTracker(max_failures=1, window=60, lockout=300, clock=clock)
    assert tracker.reserve("a")
    clock.now += 1
    tracker.failed("b")  # b is locked, so its counts are gone
    assert tracker.reserve("c")
    assert tracker.full("a"), "a's check in progress was not forgotten"


def test_recent_failures_are_counted_within_the_window_up_to_keep() -> None:
    clock = Clock()
    recent = RecentFailures(window=60, keep=4, clock=clock)
    assert recent.count("bob") == 0
    for _ in range(6):
        recent.add("bob")
        clock.now += 1
    assert recent.count("bob") == 4 and recent.count("alice") == 0
    clock.now += 58  # now 1064: the kept failures were at 1002..1005
    recent.add("bob")  # the fifth to keep pushes out 1002
    assert recent.count("bob") == 3, "1003 left the window; 1004, 1005 and 1064 count"


def test_a_full_recent_failures_table_forgets_quiet_keys_first_then_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_KEYS", 2)
    clock = Clock()
    recent = RecentFailures(window=60, clock=clock)
    recent.add("a")
    clock.now += 30
    recent.add("b")
    clock.now += 31  # a is quiet, b is not
    recent.add("c")
    assert (recent.count("a"), recent.count("b"), recent.count("c")) == (0, 1, 1)
    recent.add("d")
    assert (recent.count("b"), recent.count("c"), recent.count("d")) == (0, 1, 1), "b: oldest"
