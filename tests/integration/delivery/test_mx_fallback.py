"""Hosts that cannot take the mail now are skipped for the next MX; all down defers."""

from __future__ import annotations

import asyncio

import pytest

from postline.models import Event, EventKind, Peer
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.remote import Mode, Remote
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def two_mx(mx_for: MxFor) -> None:
    """mx1 (preference 10) on 127.0.0.2, mx2 (preference 20) on 127.0.0.1 where the sink is."""
    mx_for("x.test", host="mx2.x.test", preference=20)
    mx_for("x.test", host="mx1.x.test", address="127.0.0.2")


def named(event: Event, name: str) -> bool:
    """Whether ``event`` is about the MX host ``name``."""
    return event.mx is not None and event.mx.name == name


async def test_connection_refused_moves_on_to_the_next_mx(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery()
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert delivered.mx == Peer(name="mx2.x.test", ip="127.0.0.1", port=sink.port)
    talks = harness.of(EventKind.CONVERSATION)
    first = next(t for t in talks if named(t, "mx1.x.test"))
    assert first.transcript is not None
    assert any("4.4.1" in line for line in first.transcript), first.transcript


async def test_421_greeting_moves_on_to_the_next_mx(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    too_busy = Mode(greeting=b"421 4.3.2 Too busy\r\n", hangup="ehlo")
    async with Remote("127.0.0.2", sink.port, too_busy) as busy:
        harness = await start_delivery()
        await harness.send(["alice@x.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert busy.connections == 1
    assert named(delivered, "mx2.x.test")


async def test_4xx_to_ehlo_moves_on_to_the_next_mx(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    later = Mode(greeting=b"220 hi\r\n", ehlo=b"451 4.3.0 later\r\n")
    async with Remote("127.0.0.2", sink.port, later) as mx1:
        harness = await start_delivery()
        await harness.send(["alice@x.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert mx1.commands[0] == "EHLO relay.test"
    assert named(delivered, "mx2.x.test")


async def test_all_mx_down_defers_with_backoff(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.add_mx("down.test", 10, "mx1.x.test")
    dns.add_mx("down.test", 20, "mx3.x.test")
    dns.add_a("mx3.x.test", "127.0.0.3")
    harness = await start_delivery(retry_schedule="5m")
    await harness.send(["alice@down.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "alice@down.test")
    assert deferred.reply is not None and deferred.reply.enhanced == "4.4.1"
    assert named(deferred, "mx3.x.test")
    assert deferred.next_attempt_at is not None
    assert 299 <= (deferred.next_attempt_at - deferred.at).total_seconds() <= 301


async def test_cname_mx_target_is_followed(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.add_mx("alias.test", 10, "mail.alias.test")
    dns.add_cname("mail.alias.test", "mx2.x.test")
    harness = await start_delivery()
    await harness.send(["alice@alias.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@alias.test")
    assert delivered.mx == Peer(name="mail.alias.test", ip="127.0.0.1", port=sink.port)


async def test_ipv6_address_is_used_when_present(
    start_delivery: StartDelivery, dns: DnsServer, smtp_port: int
) -> None:
    dns.add_mx("six.test", 10, "mx6.six.test")
    dns.add_aaaa("mx6.six.test", "::1")
    try:
        sink6 = SmtpSink("::1", smtp_port)
        sink6.start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        harness = await start_delivery()
        await harness.send(["alice@six.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@six.test")
        assert delivered.mx == Peer(name="mx6.six.test", ip="::1", port=smtp_port)
        assert len(sink6.wait_for(1, 5)) == 1
    finally:
        sink6.stop()


async def test_silent_server_times_out_and_the_next_mx_is_used(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, never greet, wait for the client to give up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.2", sink.port)
    try:
        harness = await start_delivery(connect_timeout="0.5s", greeting_timeout="0.5s")
        await harness.send(["alice@x.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    finally:
        server.close()
        await server.wait_closed()
    assert named(delivered, "mx2.x.test")
    mx1 = [t for t in harness.of(EventKind.CONVERSATION) if named(t, "mx1.x.test")]
    assert any("4.4.1" in line and "imed out" in line for line in mx1[0].transcript or [])
