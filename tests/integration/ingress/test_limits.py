"""Limits: size, recipients, line length, sessions, rates, timeouts, error budget."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import pytest

from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD, Running, plain
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration


async def transaction(client: RawClient, rcpts: int = 1) -> None:
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    for index in range(rcpts):
        assert (await client.command(f"RCPT TO:<r{index}@example.net>")).code == 250


async def session(ingress: Running, source: str = "127.0.0.1") -> RawClient:
    client = await RawClient.connect(*ingress.plain, source=source)
    await client.ehlo()
    return client


async def test_size_is_advertised_and_enforced_with_and_without_size(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_message_size=1000)
    client = await session(ingress)
    assert "SIZE 1000" in (await client.command("EHLO again.test")).lines
    too_big = await client.command("MAIL FROM:<a@example.org> SIZE=1001")
    assert too_big.text == "552 5.3.4 Message size exceeds fixed maximum message size"
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"x" * 500 + b"\r\n" + b"y" * 500 + b"\r\n.\r\n")
    assert (await client.reply()).text.startswith("552 5.3.4")
    assert (await client.command("NOOP")).code == 250, "the session stays in step"
    await client.close()
    assert await ingress.submitted() == []


async def test_oversized_message_memory_stays_bounded(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_message_size="1MiB", data_timeout="60s")
    client = await session(ingress)
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    line = b"z" * 998 + b"\r\n"
    chunk = line * 64
    tracemalloc.start()
    try:
        for _ in range(20 * 1024 * 1024 // len(chunk)):  # 20 MiB, twenty times the limit
            await client.send(chunk)
        await client.send(b".\r\n")
        reply = await client.reply(timeout=60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reply.text.startswith("552 5.3.4")
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while refusing a 20 MiB message"
    await client.close()


async def test_a_header_section_past_its_line_or_size_limit_gets_552_and_nothing_is_queued(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_header_lines=50, max_header_size=4000)
    client = await session(ingress)
    folded = b"X-Fold: a\r\n" + b" continued\r\n" * 60  # one field, 61 lines
    wide = b"".join(b"X-Wide-%d: %s\r\n" % (n, b"w" * 200) for n in range(30))  # 6 KB
    for header in (folded, wide):
        await transaction(client)
        assert (await client.command("DATA")).code == 354
        await client.send(header + b"\r\nbody\r\n.\r\n")
        reply = await client.reply()
        assert reply.code == 552 and reply.text.startswith("552 5.3.4"), reply.text
        assert (await client.command("RSET")).code == 250, "the session stays in step"
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: small\r\n\r\nbody\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    assert len(await ingress.submitted()) == 1


async def test_recipients_past_the_limit_get_452(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_recipients=3)
    client = await session(ingress)
    await transaction(client, rcpts=3)
    assert (await client.command("RCPT TO:<four@example.net>")).text == (
        "452 4.5.3 Too many recipients"
    )
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: three\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert len(envelope.rcpt_to) == 3


async def test_a_repeated_recipient_is_queued_once_and_not_counted_twice(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_recipients=2)
    client = await session(ingress)
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    for rcpt in ("a@example.net", "a@Example.NET", "b@example.net"):
        assert (await client.command(f"RCPT TO:<{rcpt}>")).code == 250, rcpt
    assert (await client.command("RCPT TO:<c@example.net>")).text.startswith("452 4.5.3")
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: twice\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert envelope.rcpt_to == ("a@example.net", "b@example.net")


async def test_long_and_bare_lf_lines_are_refused(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await session(ingress)
    assert (await client.command("NOOP " + "x" * 993)).code == 250, "1000 octets with CRLF"
    assert (await client.command("NOOP " + "x" * 994)).text.startswith("500 5.5.2")
    assert (await client.command("NOOP " + "x" * 5000)).text.startswith("500 5.5.2")
    await client.send(b"NOOP\n")
    assert (await client.reply()).text.startswith("500 5.5.2")
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: long\r\n\r\n" + b"x" * 1001 + b"\r\n.\r\n")
    assert (await client.reply()).text.startswith("500 5.5.2")
    assert (await client.command("NOOP")).code == 250
    await client.close()
    assert await ingress.submitted() == []


async def test_sessions_past_the_limits_get_421(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_sessions=3, max_sessions_per_ip=2)
    first = await session(ingress, "127.0.0.5")
    second = await session(ingress, "127.0.0.5")
    refused = await RawClient.connect(*ingress.plain, source="127.0.0.5", greeting=False)
    assert (await refused.reply()).text.startswith("421 4.7.0")
    assert await refused.closed()
    third = await session(ingress, "127.0.0.6")
    overall = await RawClient.connect(*ingress.plain, source="127.0.0.7", greeting=False)
    assert (await overall.reply()).text.startswith("421 4.7.0")
    await first.command("QUIT")
    await first.closed()
    again = await session(ingress, "127.0.0.7")
    for client in (second, third, again, refused, overall):
        await client.close()


async def test_message_rate_per_client_address(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_messages_per_ip=2, rate_window="1h")
    client = await session(ingress, "127.0.0.1")
    for _ in range(2):
        assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
        assert (await client.command("RSET")).code == 250
    limited = await client.command("MAIL FROM:<a@example.org>")
    assert limited.text == "450 4.7.1 Message rate limit exceeded; try again later"
    other = await session(ingress, "127.0.0.2")
    assert (await other.command("MAIL FROM:<a@example.org>")).code == 250
    await client.close()
    await other.close()


async def test_message_rate_per_user(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(max_messages_per_user=1, rate_window="1h", **tls_settings)
    codes = []
    for source in ("127.0.0.5", "127.0.0.6"):
        client = await session(ingress, source)
        await client.starttls(client_tls())
        await client.ehlo()
        auth = await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
        assert auth.code == 235, auth
        codes.append((await client.command("MAIL FROM:<alice@example.org>")).code)
        await client.close()
    assert codes == [250, 450]


async def test_idle_client_is_disconnected(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(idle_timeout="0.5s")
    client = await session(ingress)
    started = time.monotonic()
    reply = await client.reply(timeout=5)
    assert reply.text.startswith("421 4.4.2")
    assert await client.closed()
    assert 0.4 < time.monotonic() - started < 3


async def test_slowloris_command_is_cut_off_by_the_command_timeout(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(idle_timeout="5s", command_timeout="1s")
    client = await session(ingress)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        for byte in b"NOOP waiting forever":
            await client.send(bytes([byte]))
            await asyncio.sleep(0.15)
    assert time.monotonic() - started < 3.5


async def test_slow_data_is_cut_off_by_the_data_time_limit(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(idle_timeout="5s", data_timeout="1s")
    client = await session(ingress)
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    reply = asyncio.create_task(client.reply(timeout=5))
    while not reply.done():
        await client.send(b"drip\r\n")
        await asyncio.wait([reply], timeout=0.2)
    assert (await reply).text.startswith("421 4.4.2")
    await client.close()
    assert await ingress.submitted() == []


async def test_500_idle_connections_do_not_stop_a_legitimate_client(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    idle = await asyncio.gather(
        *(
            RawClient.connect(*ingress.plain, source=f"127.0.1.{1 + index // 50}")
            for index in range(500)
        )
    )
    started = time.monotonic()
    client = await session(ingress)
    await transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: still here\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    assert time.monotonic() - started < 5, "the idle crowd slowed a real client down"
    await client.close()
    await asyncio.gather(*(conn.close() for conn in idle))


async def test_too_many_errors_end_the_session(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_errors=5)
    client = await session(ingress)
    for _ in range(4):
        assert (await client.command("BOGUS")).text == "500 5.5.1 Command not recognized"
    assert (await client.command("BOGUS")).code == 500
    assert (await client.reply()).text.startswith("421 4.7.0")
    assert await client.closed()


async def test_recipients_past_the_limit_count_as_errors_and_are_logged_a_few_times(
    start_ingress: StartIngress, caplog: pytest.LogCaptureFixture
) -> None:
    ingress = await start_ingress(max_recipients=2, max_errors=10)
    client = await session(ingress)
    await transaction(client, rcpts=2)
    caplog.set_level("INFO", logger="postline.ingress.handler")
    codes = []
    for index in range(50):
        await client.send(f"RCPT TO:<x{index}@example.net>\r\n".encode())
        reply = await client.reply()
        codes.append(reply.code)
        if reply.code == 421:
            break
    assert codes == [452] * 10 + [421], "the tenth refused RCPT ends the session"
    assert await client.closed()
    refused = [r for r in caplog.records if "too_many_recipients" in r.getMessage()]
    assert len(refused) == 6, "five lines, then one saying the rest are not logged"
    assert "not logged" in refused[-1].getMessage()
