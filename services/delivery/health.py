"""Destination health: a short memory of hosts that do not answer, shared by a worker's messages.

Postfix remembers dead hosts; without a memory every message pays a dead MX's
connect or greeting timeout again. ``HostHealth`` counts, per destination
address and port, the consecutive connection failures: a refused or timed-out
connect, or a connection that gave no greeting (lost or timed out). After
``failure_limit`` of them in a row the host is *down* for ``backoff`` seconds:
``down(address, port)`` then returns the ``Down`` record and the caller skips
the host with a temporary reply and a transcript line (``skipped: host
mx.example[192.0.2.1]:25 down since 12:03``). When the back-off ends one
connection may try the host (the others keep skipping it until that probe
ends); a success (``up``) forgets the host, another failure starts a new
back-off. A host that answers, even with a refusal, is up: only silence and
connection errors count.

The table is per process (every message of the worker shares it), bounded by
``MAX_HOSTS`` (oldest entries dropped), and reported by the gauge
``postline_delivery_hosts_down`` and the counter
``postline_delivery_host_skips_total``. ``failure_limit = 0`` disables it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from postline.delivery import metrics

MAX_HOSTS = 10_000


@dataclass
class _Host:
    failures: int = 0
    down_since: float | None = None  # wall-clock time, for people
    retry_at: float = 0.0  # monotonic
    probing: bool = False


@dataclass(frozen=True)
class Down:
    """A host being skipped: since when (wall clock), until when, after how many failures."""

    since: float
    until: float
    failures: int

    def describe(self) -> str:
        """``down since 12:03 (2 connection failures in a row), next try after 12:05``."""
        return (
            f"down since {_clock(self.since)} ({self.failures} connection failures in a row), "
            f"next try after {_clock(self.until)}"
        )


class HostHealth:
    """Consecutive connection failures per (address, port) (module docstring)."""

    def __init__(
        self,
        failure_limit: int,
        backoff: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._limit = failure_limit
        self._backoff = backoff
        self._clock = clock
        self._wall = wall
        self._hosts: OrderedDict[tuple[str, int], _Host] = OrderedDict()

    def down(self, address: str, port: int) -> Down | None:
        """The ``Down`` record if the host is to be skipped now, else None (go ahead)."""
        host = self._hosts.get((address, port))
        if host is None or host.down_since is None:
            return None
        now = self._clock()
        if now < host.retry_at or host.probing:
            metrics.HOST_SKIPS.inc()
            until = self._wall() + max(host.retry_at - now, 0.0)
            return Down(host.down_since, until, host.failures)
        host.probing = True  # this connection tries the host again; the others keep skipping
        return None

    def failed(self, address: str, port: int) -> None:
        """A connection failure or timeout (never a reply: a refusal means the host is up)."""
        if self._limit == 0:
            return
        key = (address, port)
        host = self._hosts.get(key) or _Host()
        self._hosts[key] = host
        self._hosts.move_to_end(key)
        host.failures += 1
        host.probing = False
        if host.failures >= self._limit:
            if host.down_since is None:
                host.down_since = self._wall()
                metrics.HOSTS_DOWN.inc()
            host.retry_at = self._clock() + self._backoff
        while len(self._hosts) > MAX_HOSTS:
            _, dropped = self._hosts.popitem(last=False)
            if dropped.down_since is not None:
                metrics.HOSTS_DOWN.dec()

    def up(self, address: str, port: int) -> None:
        """The host answered: forget its failures."""
        host = self._hosts.pop((address, port), None)
        if host is not None and host.down_since is not None:
            metrics.HOSTS_DOWN.dec()

    def clear(self) -> None:
        """Forget every host (the service is closing): the gauge counts only live tables."""
        for host in self._hosts.values():
            if host.down_since is not None:
                metrics.HOSTS_DOWN.dec()
        self._hosts.clear()

    def release(self, address: str, port: int) -> None:
        """A probe ended without a verdict (cancelled): let the next connection try."""
        host = self._hosts.get((address, port))
        if host is not None:
            host.probing = False


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M")
