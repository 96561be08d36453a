"""AUTH budgets: reserve before checking, (user, network) locks, the growing wait.

The Authenticator runs with a fake clock, a fake sleep (it records each wait
and moves the clock on by it) and a checker that holds every check until the
test opens its gate and records every password it was asked to check.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from postline.ingress.auth import Authenticator, Verdict, client_network, growing_delay
from postline.ingress.policy import limit_key
from postline.ingress.settings import IngressSettings
from postline.ingress.state import Connection, Listener
from postline.ingress.users import User, UserStore

RIGHT = "right"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleep:
    """Records waits and advances the clock; ``hold`` makes waits block until cancelled."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.hold = False
        self.holding = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.hold:
            self.holding.set()
            await asyncio.Event().wait()
        self.clock.now += seconds


class Checker:
    """Accepts ``RIGHT``; checks wait for ``gate``; ``checked`` lists the passwords."""

    def __init__(self) -> None:
        self.checked: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._started = asyncio.Condition()

    async def verify(self, user: User | None, password: str) -> bool:
        async with self._started:
            self.checked.append(password)
            self._started.notify_all()
        await self.gate.wait()
        return password == RIGHT

    async def until_checking(self, count: int) -> None:
        async with asyncio.timeout(5), self._started:
            await self._started.wait_for(lambda: len(self.checked) >= count)


class Guard:
    def __init__(self, **settings: Any) -> None:
        keys = {"auth_failure_delay": 0, "auth_lockout": 900, "auth_failure_window": 300}
        self.settings = IngressSettings(hostname="mx.test", **{**keys, **settings})
        self.clock = Clock()
        self.sleep = Sleep(self.clock)
        self.checker = Checker()
        self.authenticator = Authenticator(
            self.settings, UserStore(None), self.checker, clock=self.clock, sleep=self.sleep
        )

    async def auth(self, source: str, name: str, password: str) -> Verdict:
        address = ipaddress.ip_address(source)
        conn = Connection(Listener.PLAIN, client_ip=address, limit_key=limit_key(address))
        return await self.authenticator.authenticate(conn, name, password)


async def test_parallel_guesses_beyond_the_limit_are_refused_without_being_checked() -> None:
    guard = Guard(auth_max_failures=5)
    guard.checker.gate.clear()
    guesses = [
        asyncio.create_task(guard.auth("192.0.2.1", "alice", f"guess-{n}")) for n in range(12)
    ]
    await guard.checker.until_checking(5)
    late = await asyncio.wait_for(guard.auth("192.0.2.1", "carol", RIGHT), 1)
    assert late is Verdict.LOCKED, "five checks in progress use up the address's budget"
    guard.checker.gate.set()
    verdicts = await asyncio.gather(*guesses)
    assert verdicts.count(Verdict.FAILURE) == 5 and verdicts.count(Verdict.LOCKED) == 7
    assert guard.checker.checked == [f"guess-{n}" for n in range(5)]
    assert await guard.auth("192.0.2.1", "alice", RIGHT) is Verdict.LOCKED
    assert guard.checker.checked == [f"guess-{n}" for n in range(5)], "locked: nothing checked"


async def test_a_success_releases_its_reservation_but_not_the_address_failures() -> None:
    guard = Guard(auth_max_failures=3)
    guard.checker.gate.clear()
    first = [
        asyncio.create_task(guard.auth("192.0.2.1", "carol", "guess")),
        asyncio.create_task(guard.auth("192.0.2.1", "bob", RIGHT)),
    ]
    await guard.checker.until_checking(2)
    guard.checker.gate.set()
    assert await asyncio.gather(*first) == [Verdict.FAILURE, Verdict.SUCCESS]
    assert await guard.auth("192.0.2.1", "dave", "guess") is Verdict.FAILURE
    assert await guard.auth("192.0.2.1", "erin", "guess") is Verdict.FAILURE, "3rd: locks"
    assert await guard.auth("192.0.2.1", "bob", RIGHT) is Verdict.LOCKED


async def test_failures_lock_a_user_only_from_that_client_network() -> None:
    guard = Guard(auth_max_failures=2)
    for source in ("192.0.2.1", "192.0.2.2", "2001:db8:1:1::1", "2001:db8:1:2::1"):
        assert await guard.auth(source, "alice", "guess") is Verdict.FAILURE
    assert await guard.auth("192.0.2.3", "alice", RIGHT) is Verdict.LOCKED, "same /24"
    assert await guard.auth("2001:db8:1:3::1", "alice", RIGHT) is Verdict.LOCKED, "same /48"
    assert await guard.auth("192.0.2.3", "bob", RIGHT) is Verdict.SUCCESS, "another user"
    assert await guard.auth("198.51.100.1", "alice", RIGHT) is Verdict.SUCCESS
    assert await guard.auth("2001:db8:2::1", "alice", RIGHT) is Verdict.SUCCESS
    guard.clock.now += 900
    assert await guard.auth("192.0.2.3", "alice", RIGHT) is Verdict.SUCCESS, "lockout over"


async def test_a_success_clears_the_failures_of_its_user_and_network() -> None:
    guard = Guard(auth_max_failures=3)
    for source in ("192.0.2.1", "192.0.2.2"):
        assert await guard.auth(source, "alice", "guess") is Verdict.FAILURE
    assert await guard.auth("192.0.2.3", "alice", RIGHT) is Verdict.SUCCESS
    for source in ("192.0.2.4", "192.0.2.5"):
        assert await guard.auth(source, "alice", "guess") is Verdict.FAILURE
    assert await guard.auth("192.0.2.6", "alice", RIGHT) is Verdict.SUCCESS


async def test_checks_for_a_user_with_recent_failures_wait_longer_each_time_up_to_a_cap() -> None:
    guard = Guard(auth_max_failures=5, auth_failure_delay=1, auth_failure_delay_max=5)
    waits_before_check = []
    for network in range(6):  # each from its own network: nothing gets locked
        waits_before_check.append(guard.authenticator.wait_before_check("bob"))
        assert await guard.auth(f"10.0.{network}.1", "bob", "guess") is Verdict.FAILURE
    assert waits_before_check == [0, 1, 2, 4, 5, 5]
    assert guard.sleep.waits == [1, 1, 1, 2, 1, 4, 1, 5, 1, 5, 1], "the wait, then the pause"
    assert guard.authenticator.wait_before_check("alice") == 0, "only bob is slowed"
    assert await guard.auth("10.0.9.1", "bob", RIGHT) is Verdict.SUCCESS, "slowed, not locked"
    guard.clock.now += 301
    assert guard.authenticator.wait_before_check("bob") == 0, "the failures left the window"


async def test_a_check_cut_short_counts_as_a_failure() -> None:
    guard = Guard(auth_max_failures=1)
    guard.checker.gate.clear()
    guess = asyncio.create_task(guard.auth("192.0.2.1", "alice", "guess"))
    await guard.checker.until_checking(1)
    guess.cancel()
    with pytest.raises(asyncio.CancelledError):
        await guess
    guard.checker.gate.set()
    assert await guard.auth("192.0.2.1", "bob", RIGHT) is Verdict.LOCKED


async def test_a_wait_cut_short_before_the_check_does_not_count() -> None:
    guard = Guard(auth_max_failures=2, auth_failure_delay=1)
    assert await guard.auth("192.0.2.1", "alice", "guess") is Verdict.FAILURE
    guard.sleep.hold = True
    waiting = asyncio.create_task(guard.auth("192.0.2.1", "alice", "guess-2"))
    await asyncio.wait_for(guard.sleep.holding.wait(), 5)
    assert guard.sleep.waits == [1, 1], "the pause after the failure, then this wait"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    guard.sleep.hold = False
    assert guard.checker.checked == ["guess"]
    assert await guard.auth("192.0.2.1", "alice", RIGHT) is Verdict.SUCCESS


def test_growing_delay_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [growing_delay(0.5, 3, n) for n in range(6)] == [0, 0.5, 1, 2, 3, 3]
    assert growing_delay(0, 3, 10) == 0, "auth_failure_delay = 0 turns it off"
    assert growing_delay(1, 30, 10_000) == 30


def test_client_network_is_the_ipv4_slash_24_or_the_ipv6_slash_48() -> None:
    assert client_network(ipaddress.ip_address("192.0.2.77")) == "192.0.2.0/24"
    assert client_network(ipaddress.ip_address("2001:db8:1:2::5")) == "2001:db8:1::/48"
    assert client_network(None) == "unknown"
