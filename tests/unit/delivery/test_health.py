"""Destination health: N failures in a row make a host down for a while; an answer heals it."""

from __future__ import annotations

from postline.delivery.health import HostHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_host_is_skipped_after_the_failure_limit_until_the_backoff_ends() -> None:
    clock = Clock()
    health = HostHealth(2, 60, clock=clock, wall=lambda: 0.0)
    health.failed("192.0.2.1", 25)
    assert health.down("192.0.2.1", 25) is None  # one failure is not enough
    health.failed("192.0.2.1", 25)
    down = health.down("192.0.2.1", 25)
    assert down is not None and down.failures == 2
    assert down.describe().startswith("down since 00:00 (2 connection failures in a row)")
    clock.now += 61
    assert health.down("192.0.2.1", 25) is None  # one probe may go
    assert health.down("192.0.2.1", 25) is not None  # the others wait for it
    health.failed("192.0.2.1", 25)
    assert health.down("192.0.2.1", 25) is not None  # failed again: a new back-off


def test_an_answer_forgets_the_failures() -> None:
    health = HostHealth(1, 60)
    health.failed("192.0.2.1", 25)
    health.up("192.0.2.1", 25)
    assert health.down("192.0.2.1", 25) is None


def test_hosts_are_told_apart_by_address_and_port() -> None:
    health = HostHealth(1, 60)
    health.failed("192.0.2.1", 25)
    assert health.down("192.0.2.1", 587) is None
    assert health.down("192.0.2.2", 25) is None


def test_a_limit_of_zero_never_skips() -> None:
    health = HostHealth(0, 60)
    health.failed("192.0.2.1", 25)
    assert health.down("192.0.2.1", 25) is None
