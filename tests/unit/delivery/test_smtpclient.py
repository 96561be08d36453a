"""The strict SMTP client, and every aiosmtplib internal it relies on (pinned here).

``postline.delivery.smtpclient`` is the one module that uses aiosmtplib's
internals. These tests pin each of them, and the aiosmtplib series, so that an
upgrade fails loudly in this one file: the reply reader (three digits, then SP,
``-`` or the end of the line; one code per reply), the out-of-step detection
(bytes left after a reply, input while no command waits), the separate DATA
command and message data, and the greeting read apart from the TCP connect.
Each test talks to a scripted peer on loopback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import aiosmtplib
import aiosmtplib.protocol
import pytest
from prometheus_client import REGISTRY

from postline.delivery.smtpclient import ProtocolViolation, StrictProtocol, StrictSMTP
from tests.support.broker import wait_until

GREETING = b"220 peer.test ESMTP\r\n"


class Peer:
    """A scripted SMTP peer: ``replies[0]`` on connect, then the next item per line read.

    After a reply starting with ``354`` it reads a message up to the final dot (kept in
    ``messages``) before sending the next item. ``lines`` holds every line read.
    """

    def __init__(self, *replies: bytes) -> None:
        self.replies = list(replies)
        self.lines: list[bytes] = []
        self.messages: list[bytes] = []
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        if self.writer is not None:
            self.writer.close()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        try:
            if self.replies:
                await self._say(writer, self.replies.pop(0))
            while self.replies and (line := await reader.readline()):
                self.lines.append(line)
                reply = self.replies.pop(0)
                await self._say(writer, reply)
                if reply.startswith(b"354"):
                    self.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                    if self.replies:
                        await self._say(writer, self.replies.pop(0))
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    yield server
    await server.stop()


async def connected(peer: Peer, *replies: bytes, greeting_timeout: float = 5) -> StrictSMTP:
    peer.replies = list(replies)
    await peer.start()
    smtp = StrictSMTP(
        "127.0.0.1",
        peer.port,
        local_hostname="client.test",
        timeout=5,
        greeting_timeout=greeting_timeout,
    )
    await smtp.connect(timeout=5)
    return smtp


def out_of_step_total() -> float:
    return REGISTRY.get_sample_value("postline_delivery_out_of_step_total") or 0.0


# -- the aiosmtplib this adapter was written against -------------------------------------


def test_aiosmtplib_is_the_series_the_adapter_was_tested_with() -> None:
    assert aiosmtplib.__version__.startswith("5.1."), (
        "aiosmtplib changed: re-check every internal smtpclient.py relies on, then this pin"
    )


async def test_aiosmtplib_internals_the_adapter_relies_on_are_there() -> None:
    protocol = aiosmtplib.protocol.SMTPProtocol(loop=asyncio.get_running_loop())
    for attribute in ("_buffer", "_response_waiter", "_response_pending", "_command_lock"):
        assert hasattr(protocol, attribute), attribute
    for method in ("_set_response_exception", "_drain_helper", "read_response", "write"):
        assert callable(getattr(protocol, method)), method
    assert isinstance(protocol._buffer, bytearray)
    module = aiosmtplib.protocol
    assert (module.MAX_LINE_LENGTH, module.MAX_RESPONSE_LENGTH) == (8192, 32768)
    assert module.PERIOD_REGEX.sub(b"..", b"a\r\n.b\r\n") == b"a\r\n..b\r\n"
    assert module.normalize_message_line_endings(b"a\nb\rc") == b"a\r\nb\r\nc\r\n"
    assert list(inspect.signature(aiosmtplib.SMTP._create_connection).parameters) == [
        "self",
        "timeout",
    ]
    assert "self._create_connection(" in inspect.getsource(aiosmtplib.SMTP.connect)
    assert "self.protocol" in inspect.getsource(aiosmtplib.SMTP.execute_command)
    assert callable(aiosmtplib.SMTP._on_connection_lost)
    source = inspect.getsource(aiosmtplib.protocol.SMTPProtocol.execute_command)
    assert source.index("self._response_pending = True") < source.index("self.write(command)")


async def test_connections_use_the_strict_protocol(peer: Peer) -> None:
    smtp = await connected(peer, GREETING)
    assert isinstance(smtp.protocol, StrictProtocol)
    assert smtp.reached and smtp.in_step
    smtp.close()


# -- the strict reply reader -------------------------------------------------------------


async def test_multi_line_reply_of_one_code_is_read_whole(peer: Peer) -> None:
    smtp = await connected(peer, GREETING, b"250-peer.test\r\n250-SIZE 100\r\n250 8BITMIME\r\n")
    response = await smtp.ehlo()
    assert response == aiosmtplib.SMTPResponse(250, "peer.test\nSIZE 100\n8BITMIME")
    assert smtp.supports_extension("size") and smtp.in_step
    smtp.close()


@pytest.mark.parametrize(
    ("wire", "what", "words"),
    [
        (b"250-ok\r\n550 no\r\n", "reply lines with different codes", "250-ok / 550 no"),
        (b"25 ok\r\n", "malformed reply line", "25 ok"),
        (b"250ok\r\n", "malformed reply line", "250ok"),
        (b"2500 ok\r\n", "malformed reply line", "2500 ok"),
        (b"199 ok\r\n", "malformed reply line", "199 ok"),
        (b"ok\r\n", "malformed reply line", "ok"),
        (b"250 \x1b[2Jok\r\n", "", ""),
    ],
)
async def test_reply_lines_must_be_three_digits_then_space_dash_or_end(
    peer: Peer, wire: bytes, what: str, words: str
) -> None:
    smtp = await connected(peer, GREETING, wire)
    if not what:  # well formed; control characters are the caller's to escape
        assert (await smtp.execute_command(b"NOOP")).code == 250
        smtp.close()
        return
    with pytest.raises(ProtocolViolation) as caught:
        await smtp.execute_command(b"NOOP")
    assert (caught.value.what, caught.value.words) == (what, words)
    smtp.close()


async def test_a_code_alone_on_its_line_is_a_reply(peer: Peer) -> None:
    smtp = await connected(peer, GREETING, b"250\r\n")
    assert await smtp.execute_command(b"NOOP") == aiosmtplib.SMTPResponse(250, "")
    smtp.close()


async def test_over_long_reply_line_is_a_violation_with_its_start_as_words(peer: Peer) -> None:
    with pytest.raises(ProtocolViolation, match="reply line longer than 8192 bytes") as caught:
        await connected(peer, b"220 " + b"x" * 9000 + b"\r\n")
    assert caught.value.words.startswith("220 xxx") and len(caught.value.words) == 200


async def test_reply_without_end_past_the_response_limit_is_a_violation(peer: Peer) -> None:
    with pytest.raises(ProtocolViolation, match="reply longer than 32768 bytes"):
        await connected(peer, b"220-" + b"y" * 40000)


# -- out of step ---------------------------------------------------------------------------


async def test_bytes_left_after_a_reply_put_the_session_out_of_step(peer: Peer) -> None:
    before = out_of_step_total()
    smtp = await connected(peer, GREETING, b"250 first\r\n250 second\r\n")
    with pytest.raises(ProtocolViolation) as caught:
        await smtp.execute_command(b"NOOP")
    assert caught.value.response == aiosmtplib.SMTPResponse(250, "first")
    assert caught.value.what == "input after a complete reply"
    assert caught.value.words == "250 second"
    assert not smtp.in_step and out_of_step_total() == before + 1
    with pytest.raises(ProtocolViolation):  # never sent: it would read "250 second"
        await smtp.execute_command(b"RSET")
    assert peer.lines == [b"NOOP\r\n"]
    smtp.close()


async def test_input_while_no_command_waits_puts_the_session_out_of_step(peer: Peer) -> None:
    before = out_of_step_total()
    smtp = await connected(peer, GREETING, b"250 ok\r\n")
    assert (await smtp.execute_command(b"NOOP")).code == 250
    assert peer.writer is not None
    peer.writer.write(b"250 unsolicited\r\n")
    await wait_until(lambda: not smtp.in_step, 5, "the unsolicited reply to be noticed")
    assert smtp.out_of_step is not None
    assert smtp.out_of_step.what == "input while no reply was awaited"
    assert out_of_step_total() == before + 1
    with pytest.raises(ProtocolViolation):
        await smtp.execute_command(b"RSET")
    smtp.close()


# -- DATA command apart from the message data ---------------------------------------------


async def test_message_goes_out_after_354_and_its_reply_is_its_own(peer: Peer) -> None:
    body = b"Subject: x\n\n.hidden\r\nline\r" + b"z" * 200_000 + b"\n"
    smtp = await connected(peer, GREETING, b"354 go\r\n", b"250 2.0.0 queued as A1\r\n")
    assert await smtp.execute_command(b"DATA") == aiosmtplib.SMTPResponse(354, "go")
    response = await smtp.send_message_data(body, block_timeout=5, reply_timeout=5)
    assert response == aiosmtplib.SMTPResponse(250, "2.0.0 queued as A1")
    wire = b"Subject: x\r\n\r\n..hidden\r\nline\r\n" + b"z" * 200_000 + b"\r\n.\r\n"
    assert peer.messages == [wire]
    smtp.close()


async def test_a_250_to_the_data_command_is_returned_not_taken_for_the_end(peer: Peer) -> None:
    smtp = await connected(peer, GREETING, b"250 2.0.0 no data needed\r\n")
    response = await smtp.execute_command(b"DATA")
    assert response.code == 250  # the caller judges it (a protocol error): no body was sent
    assert peer.messages == []
    smtp.close()


async def test_end_of_data_reply_with_extra_input_stands_but_leaves_the_session_out_of_step(
    peer: Peer,
) -> None:
    smtp = await connected(peer, GREETING, b"354 go\r\n", b"250 stored\r\n250 extra\r\n")
    await smtp.execute_command(b"DATA")
    response = await smtp.send_message_data(b"x\r\n", block_timeout=5, reply_timeout=5)
    assert response == aiosmtplib.SMTPResponse(250, "stored")
    assert smtp.out_of_step is not None and smtp.out_of_step.words == "250 extra"
    smtp.close()


async def test_end_of_data_reply_has_its_own_timeout(peer: Peer) -> None:
    smtp = await connected(peer, GREETING, b"354 go\r\n")  # then silence after the dot
    await smtp.execute_command(b"DATA")
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await smtp.send_message_data(b"x\r\n", block_timeout=5, reply_timeout=0.2)
    assert not smtp.is_connected


# -- the greeting --------------------------------------------------------------------------


async def test_greeting_is_returned_whatever_its_code(peer: Peer) -> None:
    smtp = await connected(peer, b"554 5.3.2 not now\r\n")
    assert smtp.is_connected  # judging it is the caller's job (trouble.expect)
    smtp.close()


async def test_greeting_has_its_own_timeout_after_the_connect(peer: Peer) -> None:
    smtp_error: BaseException | None = None
    try:
        await connected(peer, greeting_timeout=0.2)  # the peer never greets
    except aiosmtplib.SMTPConnectTimeoutError as error:
        smtp_error = error
    assert smtp_error is not None and "greeting" in str(smtp_error)
