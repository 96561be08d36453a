"""Session counters, message-rate buckets and AUTH failure lockouts (fake clock)."""

from __future__ import annotations

from postline.ingress.limits import FailureTracker, RateLimiter, SessionCounter


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
