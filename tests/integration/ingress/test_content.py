"""Content canon, smuggling, pipelining and the ESMTP extensions, against the submit queue."""

from __future__ import annotations

import pytest

from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import Running

pytestmark = pytest.mark.integration

SMUGGLED = (
    b"MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
    b"X-Smuggled: yes\r\n\r\nsmuggled\r\n"
)
SMUGGLING = [
    b"Subject: s\r\n\r\nfirst\n.\n" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\r.\r" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\n.\r\n" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\r\n.\n" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\r.\r\n" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\r\n.\r" + SMUGGLED + b".\r\n",
    b"Subject: s\r\n\r\nfirst\r\n\x00.\r\n" + SMUGGLED + b".\r\n",
]


async def open_data(ingress: Running) -> RawClient:
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command("RCPT TO:<b@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    return client


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"Subject: lf\r\n\r\nbare\nline feed\r\n.\r\n", "550 5.6.0"),
        (b"Subject: cr\r\n\r\nbare\rcarriage return\r\n.\r\n", "550 5.6.0"),
        (b"Subject: nul\r\n\r\nnul\x00byte\r\n.\r\n", "550 5.6.0"),
    ],
)
async def test_bare_cr_lf_and_nul_refuse_the_message(
    start_ingress: StartIngress, content: bytes, expected: str
) -> None:
    ingress = await start_ingress()
    client = await open_data(ingress)
    await client.send(content)
    assert (await client.reply()).text.startswith(expected)
    assert (await client.command("NOOP")).code == 250
    await client.close()
    assert await ingress.submitted() == []


async def test_smuggling_payloads_never_yield_a_second_message(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    for payload in SMUGGLING:
        client = await open_data(ingress)
        await client.send(payload + b"QUIT\r\n")
        replies = [await client.reply()]
        while replies[-1].code != 221:
            replies.append(await client.reply())
        assert [r.code for r in replies] == [550, 221], (payload, replies)
        await client.close()
    assert await ingress.submitted() == []


async def test_dot_stuffed_lines_are_content_not_end_of_data(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await open_data(ingress)
    await client.send(b"Subject: dots\r\n\r\n..\r\n..MAIL FROM:<x@evil.test>\r\n...\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(body, _)] = await ingress.submitted()
    assert body == b"Subject: dots\r\n\r\n.\r\n.MAIL FROM:<x@evil.test>\r\n..\r\n"


async def test_pipelined_transactions_reply_in_order_and_queue_one_per_250(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_recipients=2)
    client = await RawClient.connect(*ingress.plain)
    ehlo = await client.ehlo()
    assert "PIPELINING" in ehlo.lines
    batch = b""
    for index in range(5):
        batch += b"MAIL FROM:<a@example.org>\r\n"
        batch += f"RCPT TO:<r{index}@example.net>\r\n".encode()
        if index == 2:
            batch += b"RCPT TO:<x@example.net>\r\nRCPT TO:<too-many@example.net>\r\n"
        batch += b"DATA\r\n" + f"Subject: {index}\r\n\r\nbody {index}\r\n.\r\n".encode()
    batch += b"RSET\r\nDATA\r\nQUIT\r\n"
    await client.send(batch)
    codes: list[int] = []
    while not codes or codes[-1] != 221:
        codes.append((await client.reply()).code)
    per_message = [250, 250, 354, 250]
    third = [250, 250, 250, 452, 354, 250]
    assert codes == per_message * 2 + third + per_message * 2 + [250, 503, 221]
    queued = await ingress.submitted()
    assert len(queued) == codes.count(354) == 5
    assert [body.split(b"\r\n")[0] for body, _ in queued] == [
        f"Subject: {i}".encode() for i in range(5)
    ]


async def test_8bit_body_is_queued_byte_for_byte(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    assert "8BITMIME" in (await client.ehlo()).lines
    assert (await client.command("MAIL FROM:<a@example.org> BODY=8BITMIME")).code == 250
    assert (await client.command("RCPT TO:<b@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    body = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n".encode()
    await client.send(body + b"\xff\xfe raw bytes\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(queued, _)] = await ingress.submitted()
    assert queued == body + b"\xff\xfe raw bytes\r\n"


async def test_every_reply_in_a_session_has_an_enhanced_code(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    assert "ENHANCEDSTATUSCODES" in (await client.ehlo()).lines
    commands = ["NOOP", "HELP", "VRFY a", "EXPN list", "BOGUS", "MAIL FROM:<a@example.org>"]
    commands += ["RCPT TO:<b@example.net>", "RSET", "DATA", "RCPT TO:<b@example.net>", "QUIT"]
    for command in commands:
        reply = await client.command(command)
        assert reply.enhanced[:1] == str(reply.code)[:1] and reply.enhanced.count(".") == 2, (
            command,
            reply,
        )


async def test_ehlo_answers_the_hostname_then_each_extension_and_helo_one_line(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(max_message_size=1000)
    client = await RawClient.connect(*ingress.plain)
    ehlo = await client.ehlo()
    assert ehlo.lines == (
        "mx.test",
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
    )
    assert (await client.command("HELO client.test")).lines == ("mx.test",)
    assert (await client.command("NOOP")).text == "250 2.0.0 Ok", "nothing left over"
    await client.close()
