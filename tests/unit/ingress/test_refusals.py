"""Refused events: coalesced per client, bounded, published off the reply path, drops counted."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from prometheus_client import REGISTRY

from postline.ingress import replies
from postline.ingress.refusals import Refusals
from postline.ingress.state import Connection, Listener
from postline.models import Event, EventKind
from tests.support.broker import wait_until

DROPPED = "postline_ingress_refused_events_dropped_total"


class FakeBus:
    """Records published batches; can be down, failing, or stuck in a publish."""

    def __init__(self) -> None:
        self.ready = True
        self.published: list[Event] = []
        self.fail = False
        self.stuck = asyncio.Event()
        self.stuck.set()

    async def publish_events(self, events: list[Event]) -> None:
        await self.stuck.wait()
        if self.fail:
            raise RuntimeError("no confirm")
        self.published.extend(events)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(ip: str = "192.0.2.7", **fields: object) -> Connection:
    conn = Connection(Listener.PLAIN, client_ip=ipaddress.ip_address(ip), limit_key=ip)
    conn.helo = "client.example"
    for name, value in fields.items():
        setattr(conn, name, value)
    return conn


def dropped() -> float:
    return REGISTRY.get_sample_value(DROPPED) or 0.0


async def test_a_refusal_is_published_at_once_as_a_refused_event_with_the_session() -> None:
    bus = FakeBus()
    refusals = Refusals(bus)
    conn = client(tls=True, tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384")
    conn.auth_user = "mary"
    refusals.record(
        conn,
        "RCPT",
        "relay_denied",
        replies.RELAY_DENIED,
        mail_from="mary@example.org",
        recipient="john@partner.test",
    )
    await wait_until(lambda: bus.published, 5, "the refused event")
    [event] = bus.published
    assert event.kind is EventKind.REFUSED
    assert event.message_id == f"refused-{event.event_id}"
    assert (event.command, event.reason, event.reply) == (
        "RCPT",
        "relay_denied",
        replies.RELAY_DENIED,
    )
    assert (event.client_ip, event.helo, event.auth_user) == ("192.0.2.7", "client.example", "mary")
    assert event.tls is not None and event.tls.version == "TLSv1.3"
    assert (event.mail_from, event.recipient) == ("mary@example.org", "john@partner.test")
    assert (event.count, event.sampled, event.session_id) == (1, None, conn.session_id)
    await refusals.close(1)


async def test_repeats_from_one_client_become_one_event_whose_count_adds_up() -> None:
    bus, clock = FakeBus(), FakeClock()
    refusals = Refusals(bus, window=5.0, clock=clock)
    conn = client()
    for _ in range(2000):
        refusals.record(conn, "AUTH", "auth_locked", replies.AUTH_LOCKED)
    assert refusals.open_slots == 1
    await wait_until(lambda: len(bus.published) == 1, 5, "the first event")
    clock.now += 5.0
    refusals.expire()
    await wait_until(lambda: len(bus.published) == 2, 5, "the coalesced event")
    first, rest = bus.published
    assert (first.count, first.sampled) == (1, None)
    assert (rest.count, rest.sampled) == (1999, True)
    assert (first.count or 0) + (rest.count or 0) == 2000
    await refusals.close(1)


async def test_other_clients_commands_and_reasons_are_not_coalesced_together() -> None:
    bus = FakeBus()
    refusals = Refusals(bus)
    refusals.record(client("192.0.2.1"), "AUTH", "auth_failed", replies.AUTH_INVALID)
    refusals.record(client("192.0.2.2"), "AUTH", "auth_failed", replies.AUTH_INVALID)
    refusals.record(client("192.0.2.1"), "AUTH", "auth_locked", replies.AUTH_LOCKED)
    refusals.record(client("192.0.2.1"), "RCPT", "relay_denied", replies.RELAY_DENIED)
    await wait_until(lambda: len(bus.published) == 4, 5, "four separate events")
    assert all(event.count == 1 for event in bus.published)
    await refusals.close(1)


async def test_a_refusal_after_the_window_starts_a_new_slot_and_is_published_at_once() -> None:
    bus, clock = FakeBus(), FakeClock()
    refusals = Refusals(bus, window=5.0, clock=clock)
    conn = client()
    refusals.record(conn, "MAIL", "rate_ip", replies.RATE_LIMITED)
    refusals.record(conn, "MAIL", "rate_ip", replies.RATE_LIMITED)
    clock.now += 6.0
    refusals.record(conn, "MAIL", "rate_ip", replies.RATE_LIMITED)
    await wait_until(lambda: len(bus.published) == 3, 5, "first, coalesced repeat, new first")
    assert [(e.count, e.sampled) for e in bus.published] == [(1, None), (1, True), (1, None)]
    await refusals.close(1)


async def test_the_coalesced_event_carries_the_last_repeats_details() -> None:
    bus, clock = FakeBus(), FakeClock()
    refusals = Refusals(bus, window=5.0, clock=clock)
    conn = client()
    for n in range(3):
        refusals.record(
            conn, "RCPT", "relay_denied", replies.RELAY_DENIED, recipient=f"r{n}@x.test"
        )
    await refusals.close(1)
    assert [(e.recipient, e.count) for e in bus.published] == [("r0@x.test", 1), ("r2@x.test", 2)]


async def test_the_open_windows_are_published_when_ingress_stops() -> None:
    bus = FakeBus()
    refusals = Refusals(bus, window=3600.0)
    for _ in range(10):
        refusals.record(client(), "AUTH", "auth_failed", replies.AUTH_INVALID)
    await refusals.close(5)
    assert sum(event.count or 0 for event in bus.published) == 10
    assert refusals.open_slots == 0


async def test_a_stuck_broker_never_grows_the_buffer_past_capacity_and_drops_are_counted() -> None:
    bus = FakeBus()
    bus.stuck.clear()  # the first publish never returns
    refusals = Refusals(bus, capacity=50)
    before = dropped()
    started = time.monotonic()
    for n in range(500):
        refusals.record(client(f"10.0.{n // 250}.{n % 250}"), "RCPT", "relay_denied", None)
    elapsed = time.monotonic() - started
    await asyncio.sleep(0)
    assert refusals.waiting <= 50
    assert dropped() - before >= 500 - 50 - 1  # at most one batch of one is in the stuck publish
    assert elapsed < 1.0  # recording stayed cheap: nothing waited for the broker
    bus.stuck.set()
    await refusals.close(1)


async def test_events_are_dropped_and_counted_while_the_broker_is_down() -> None:
    bus = FakeBus()
    bus.ready = False
    refusals = Refusals(bus)
    before = dropped()
    for n in range(3):
        refusals.record(client(f"192.0.2.{n}"), "DATA", "broker_unavailable", replies.TRY_AGAIN)
    await wait_until(lambda: dropped() - before == 3, 5, "three drops counted")
    assert refusals.waiting == 0 and not bus.published
    await refusals.close(1)


async def test_a_publish_the_broker_does_not_confirm_is_dropped_and_counted() -> None:
    bus = FakeBus()
    bus.fail = True
    refusals = Refusals(bus)
    before = dropped()
    refusals.record(client(), "MAIL", "sender_not_owned", replies.SENDER_NOT_OWNED)
    await wait_until(lambda: dropped() - before == 1, 5, "the drop counted")
    await refusals.close(1)


async def test_many_distinct_clients_never_keep_more_than_max_slots_open() -> None:
    bus = FakeBus()
    refusals = Refusals(bus, max_slots=100, capacity=100_000)
    for n in range(1000):
        conn = client(f"10.1.{n // 250}.{n % 250}")
        refusals.record(conn, "AUTH", "auth_failed", replies.AUTH_INVALID)
        refusals.record(conn, "AUTH", "auth_failed", replies.AUTH_INVALID)
    assert refusals.open_slots == 100
    await refusals.close(5)
    assert sum(event.count or 0 for event in bus.published) == 2000
