"""Counters behind the ingress limits: sessions, message rates and AUTH failures.

All three are in-memory and per process (each ingress replica limits on its
own; the load balancer spreads clients). Their memory is bounded: a table that
reaches ``max_keys`` entries forgets its idle entries first, then its oldest.
Time comes from an injectable monotonic ``clock`` so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

Clock = Callable[[], float]
MAX_KEYS = 100_000
V = TypeVar("V")


class SessionRefusal(StrEnum):
    TOTAL = "max_sessions"
    PER_CLIENT = "max_sessions_per_ip"


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


class FailureTracker:
    """``max_failures`` within ``window`` seconds locks a key out for ``lockout`` seconds."""

    def __init__(
        self, max_failures: int, window: float, lockout: float, clock: Clock = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, key: str) -> bool:
        until = self._locked_until.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._locked_until[key]
            return False
        return True

    def failed(self, key: str) -> bool:
        """Record a failure; True if this one locks ``key`` out."""
        now = self._clock()
        if key not in self._failures:
            _make_room(self._failures, lambda old: not old or now - old[-1] > self._window)
            _make_room(self._locked_until, lambda until: until <= now)
        times = self._failures.setdefault(key, deque())
        times.append(now)
        while times and now - times[0] > self._window:
            times.popleft()
        if len(times) < self._max:
            return False
        del self._failures[key]
        self._locked_until[key] = now + self._lockout
        return True

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def _make_room(table: dict[str, V], idle: Callable[[V], bool]) -> None:
    """Before a new key enters a full ``table``: forget its idle entries, then its oldest."""
    if len(table) < MAX_KEYS:
        return
    for key in [key for key, value in table.items() if idle(value)]:
        del table[key]
    while len(table) >= MAX_KEYS:
        del table[next(iter(table))]
