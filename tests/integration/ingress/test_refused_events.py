"""Each refusal at ingress is a ``refused`` event on the real events queue; floods coalesce."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from postline.models import Event, EventKind
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD, Running, plain
from tests.support.broker import wait_until
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
OUTSIDE = "127.0.0.5"  # not in relay_networks (127.0.0.1/32)


class Events:
    """Every event taken from the ingress's events queue so far."""

    def __init__(self, ingress: Running) -> None:
        self.ingress = ingress
        self.seen: list[Event] = []

    async def refused(self, count: int = 1, timeout: float = 10) -> list[Event]:
        """Wait until ``count`` refused events arrived; return all of them."""

        async def enough() -> bool:
            self.seen += await self.ingress.events()
            return len(self.of(EventKind.REFUSED)) >= count

        await wait_until(enough, timeout, f"{count} refused events")
        return self.of(EventKind.REFUSED)

    async def wait(self, predicate: Callable[[list[Event]], bool], what: str) -> None:
        async def check() -> bool:
            self.seen += await self.ingress.events()
            return predicate(self.seen)

        await wait_until(check, 10, what)

    def of(self, kind: EventKind) -> list[Event]:
        return [event for event in self.seen if event.kind is kind]


async def session(ingress: Running, source: str = "127.0.0.1", tls: bool = False) -> RawClient:
    client = await RawClient.connect(*ingress.plain, source=source)
    await client.ehlo("client.example")
    if tls:
        await client.starttls(client_tls())
        await client.ehlo("client.example")
    return client


async def test_relay_denied_is_a_refused_rcpt_event_with_client_helo_sender_and_reply(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    client = await session(ingress, source=OUTSIDE)
    assert (await client.command("MAIL FROM:<mary@example.org>")).code == 250
    reply = await client.command("RCPT TO:<john@partner.test>")
    assert reply.text == "554 5.7.1 Relay access denied"
    await client.close()
    [event] = await Events(ingress).refused()
    assert event.message_id == f"refused-{event.event_id}"
    assert (event.command, event.reason) == ("RCPT", "relay_denied")
    assert (event.client_ip, event.helo, event.auth_user, event.tls) == (
        OUTSIDE,
        "client.example",
        None,
        None,
    )
    assert (event.mail_from, event.recipient) == ("mary@example.org", "john@partner.test")
    assert event.reply is not None and str(event.reply) == reply.text
    assert event.count == 1 and event.session_id


async def test_sender_not_owned_names_the_user_and_the_tls_of_the_session(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await session(ingress, tls=True)
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).code == 235
    assert (await client.command("MAIL FROM:<bob@example.org>")).code == 553
    await client.close()
    [event] = await Events(ingress).refused()
    assert (event.command, event.reason, event.auth_user) == ("MAIL", "sender_not_owned", "alice")
    assert event.mail_from == "bob@example.org"
    assert event.tls is not None and event.tls.version is not None


async def test_failed_and_locked_auth_and_auth_without_tls_are_refused_auth_events(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings, auth_max_failures=1)
    plaintext = await session(ingress)
    assert (await plaintext.command(f"AUTH PLAIN {plain('alice', 'x')}")).code == 538
    await plaintext.close()
    client = await session(ingress, tls=True)
    assert (await client.command(f"AUTH PLAIN {plain('alice', 'wrong')}")).code == 535
    assert (await client.command(f"AUTH PLAIN {plain('alice', 'wrong')}")).code == 454
    await client.close()
    events = await Events(ingress).refused(3)
    assert sorted((e.command, e.reason, e.reply.code if e.reply else 0) for e in events) == [
        ("AUTH", "auth_failed", 535),
        ("AUTH", "auth_locked", 454),
        ("AUTH", "auth_needs_tls", 538),
    ]
    [failed] = [e for e in events if e.reason == "auth_failed"]
    assert failed.auth_user == "alice"  # the name it tried: the diagnosis names the account


async def test_declared_size_recipient_limit_and_rate_limit_are_refused_events(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(
        max_message_size=1000, max_recipients=1, max_messages_per_ip=1, rate_window="1h"
    )
    client = await session(ingress)
    assert (await client.command("MAIL FROM:<a@example.org> SIZE=5000")).code == 552
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command("RCPT TO:<one@ok.test>")).code == 250
    assert (await client.command("RCPT TO:<two@ok.test>")).code == 452
    assert (await client.command("RSET")).code == 250
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 450
    await client.close()
    events = await Events(ingress).refused(3)
    assert sorted((e.command, e.reason) for e in events) == [
        ("MAIL", "rate_ip"),
        ("MAIL", "size_declared"),
        ("RCPT", "too_many_recipients"),
    ]
    [limit] = [e for e in events if e.reason == "too_many_recipients"]
    assert (limit.mail_from, limit.recipient) == ("a@example.org", "two@ok.test")


async def test_content_refused_at_data_names_the_envelope(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await session(ingress)
    await client.command("MAIL FROM:<a@example.org>")
    await client.command("RCPT TO:<one@ok.test>")
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: x\r\n\r\nbare\nline feed\r\n.\r\n")
    assert (await client.reply()).text.startswith("550 5.6.0")
    await client.close()
    [event] = await Events(ingress).refused()
    assert (event.command, event.reason) == ("DATA", "bare_line_ending")
    assert (event.mail_from, event.rcpt_to) == ("a@example.org", ("one@ok.test",))


async def test_a_connection_over_max_sessions_per_ip_is_a_refused_connect_event(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_sessions_per_ip=1)
    first = await session(ingress)
    second = await RawClient.connect(*ingress.plain, greeting=False)
    assert (await second.reply()).text.startswith("421 4.7.0")
    await second.close()
    await first.close()
    [event] = await Events(ingress).refused()
    assert (event.command, event.reason, event.client_ip) == (
        "CONNECT",
        "max_sessions_per_ip",
        "127.0.0.1",
    )


async def test_the_received_event_carries_helo_message_id_and_decoded_subject(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    client = await session(ingress)
    await client.command("MAIL FROM:<a@example.org>")
    await client.command("RCPT TO:<one@ok.test>")
    await client.command("DATA")
    await client.send(
        b"Message-ID: <trace.1@client.example>\r\n"
        b"Subject: =?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?=\r\n\r\nhi\r\n.\r\n"
    )
    assert (await client.reply()).code == 250
    await client.close()
    events = Events(ingress)
    await events.wait(lambda seen: any(e.kind is EventKind.RECEIVED for e in seen), "received")
    [received] = events.of(EventKind.RECEIVED)
    assert received.helo == "client.example"
    assert received.header_message_id == "<trace.1@client.example>"
    assert received.subject == "Rechnung für März"


async def test_record_subject_false_leaves_the_subject_out(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(record_subject=False)
    client = await session(ingress)
    await client.command("MAIL FROM:<a@example.org>")
    await client.command("RCPT TO:<one@ok.test>")
    await client.command("DATA")
    await client.send(b"Message-ID: <m@x>\r\nSubject: private\r\n\r\nhi\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    events = Events(ingress)
    await events.wait(lambda seen: any(e.kind is EventKind.RECEIVED for e in seen), "received")
    [received] = events.of(EventKind.RECEIVED)
    assert (received.header_message_id, received.subject) == ("<m@x>", None)


async def test_with_the_broker_down_the_refusal_is_dropped_and_counted_and_the_reply_is_quick(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(
        connect=False, broker={"url": "amqp://guest:guest@127.0.0.1:1/", "publish_timeout": "1s"}
    )
    before = REGISTRY.get_sample_value("postline_ingress_refused_events_dropped_total") or 0.0
    client = await session(ingress, source=OUTSIDE)
    await client.command("MAIL FROM:<a@example.org>")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await client.command("RCPT TO:<one@ok.test>")).code == 554
    assert loop.time() - started < 0.5
    await client.close()

    def moved() -> bool:
        now = REGISTRY.get_sample_value("postline_ingress_refused_events_dropped_total")
        return (now or 0.0) > before

    await wait_until(moved, 10, "the drop counter to move")
