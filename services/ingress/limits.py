"""Counters behind the ingress limits: sessions, message rates and AUTH failures.

All of them are in-memory and per process (each ingress replica limits on its
own; the load balancer spreads clients). Their memory is bounded: a table that
reaches ``max_keys`` entries forgets its idle entries first, then its oldest.
Time comes from an injectable monotonic ``clock`` so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

Clock = Callable[[], float]
MAX_KEYS = 100_000
V = TypeVar("V")


class SessionCounter:
    """Open sessions overall and per client key."""

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.total = 0
        self._per_client: dict[str, int] = {}

    def admit_total(self) -> bool:
        """Count one more session if under ``max_total``."""
        if self.total >= self.max_total:
            return False
        self.total += 1
        return True

    def release_total(self) -> None:
        self.total -= 1

    def admit_client(self, key: str) -> bool:
        """Count one more session for ``key`` if under ``max_per_client``."""
        count = self._per_client.get(key, 0)
        if count >= self.max_per_client:
            return False
        self._per_client[key] = count + 1
        return True

    def release_client(self, key: str) -> None:
        count = self._per_client.get(key, 0) - 1
        if count > 0:
            self._per_client[key] = count
        else:
            self._per_client.pop(key, None)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: ``rate`` events per ``window`` seconds per key (0 = unlimited)."""

    def __init__(self, rate: int, window: float, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._per_second = rate / window
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False if its bucket is empty."""
        if self._rate <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            _make_room(self._buckets, lambda old: self._level(old, now) >= self._rate)
            bucket = self._buckets[key] = _Bucket(float(self._rate), now)
        bucket.tokens = min(float(self._rate), self._level(bucket, now))
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _level(self, bucket: _Bucket, now: float) -> float:
        """Tokens in ``bucket`` at ``now``, before capping at ``rate``."""
        return bucket.tokens + (now - bucket.updated) * self._per_second


@dataclass
class _Attempts:
    """One key's failures (their times, oldest first) and checks still in progress."""

    failures: deque[float] = field(default_factory=deque)
    in_progress: int = 0


class FailureTracker:
    """``max_failures`` within ``window`` seconds locks a key out for ``lockout`` seconds.

    Checks in progress count as well: ``reserve`` a key before checking a
    password, then report the outcome with ``failed`` (the reservation becomes a
    failure) or ``release`` (a success, or a check that never ran). ``reserve``
    refuses while the key is locked or its failures plus reservations have
    reached ``max_failures``, so no more than ``max_failures`` checks per key
    can ever fail within one window, however many run at the same time.
    """

    def __init__(
        self, max_failures: int, window: float, lockout: float, clock: Clock = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._attempts: dict[str, _Attempts] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, key: str) -> bool:
        until = self._locked_until.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._locked_until[key]
            return False
        return True

    def full(self, key: str) -> bool:
        """Locked, or failures plus reservations already reach ``max_failures``."""
        if self.locked(key):
            return True
        attempts = self._attempts.get(key)
        if attempts is None:
            return False
        self._expire(attempts, self._clock())
        return len(attempts.failures) + attempts.in_progress >= self._max

    def reserve(self, key: str) -> bool:
        """Count one check in progress for ``key``; False (nothing counted) if it is full."""
        if self.full(key):
            return False
        self._entry(key, self._clock()).in_progress += 1
        return True

    def release(self, key: str) -> None:
        """A reserved check succeeded or never ran: it no longer counts."""
        attempts = self._attempts.get(key)
        if attempts is not None and attempts.in_progress > 0:
            attempts.in_progress -= 1

    def failed(self, key: str) -> bool:
        """Record a failure (in place of a reservation, if any); True if it locks ``key``."""
        now = self._clock()
        attempts = self._entry(key, now)
        attempts.in_progress = max(0, attempts.in_progress - 1)
        attempts.failures.append(now)
        self._expire(attempts, now)
        if len(attempts.failures) < self._max:
            return False
        attempts.failures.clear()
        if not attempts.in_progress:
            del self._attempts[key]
        self._locked_until[key] = now + self._lockout
        return True

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures (checks still in progress keep counting)."""
        attempts = self._attempts.get(key)
        if attempts is not None:
            attempts.failures.clear()

    def _entry(self, key: str, now: float) -> _Attempts:
        attempts = self._attempts.get(key)
        if attempts is None:
            _make_room(self._attempts, lambda old: self._quiet(old, now))
            _make_room(self._locked_until, lambda until: until <= now)
            attempts = self._attempts[key] = _Attempts()
        return attempts

    def _quiet(self, attempts: _Attempts, now: float) -> bool:
        """Nothing in progress and no failure within the window."""
        failures = attempts.failures
        return not attempts.in_progress and (not failures or now - failures[-1] > self._window)

    def _expire(self, attempts: _Attempts, now: float) -> None:
        while attempts.failures and now - attempts.failures[0] > self._window:
            attempts.failures.popleft()


class RecentFailures:
    """How many failures each key had within the last ``window`` seconds.

    Only the latest ``keep`` failures of a key are remembered, so ``count``
    never exceeds ``keep`` (enough for a delay that doubles up to a cap).
    """

    def __init__(self, window: float, keep: int = 32, clock: Clock = time.monotonic) -> None:
        self._window = window
        self._keep = keep
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def add(self, key: str) -> None:
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            _make_room(self._failures, lambda old: not old or now - old[-1] > self._window)
            times = self._failures[key] = deque(maxlen=self._keep)
        times.append(now)

    def count(self, key: str) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        now = self._clock()
        while times and now - times[0] > self._window:
            times.popleft()
        return len(times)


def _make_room(table: dict[str, V], idle: Callable[[V], bool]) -> None:
    """Before a new key enters a full ``table``: forget its idle entries, then its oldest."""
    if len(table) < MAX_KEYS:
        return
    for key in [key for key, value in table.items() if idle(value)]:
        del table[key]
    while len(table) >= MAX_KEYS:
        del table[next(iter(table))]
