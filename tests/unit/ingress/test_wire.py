"""The ingress wire: bounded line reads, end of a connection, and the TLS hand-over.

The TLS tests run a real loopback server made of ``ClientWire`` alone (no
broker), so they run on every supported Python: ``_hand_over`` relies on how
``loop.start_tls`` installs its protocol, and these tests are what fails
first if a Python release changes that.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from postline.ingress.wire import ClientGone, ClientWire, LineTooLong, ReadTimeout, TlsFailed
from tests.support.certs import client_tls, make_cert

Handler = Callable[[ClientWire], Awaitable[None]]


async def _never(_: ClientWire) -> None:
    raise AssertionError("no session in this test")


def fed(*chunks: bytes, eof: bool = True) -> ClientWire:
    wire = ClientWire(_never)
    for chunk in chunks:
        wire.data_received(chunk)
    if eof:
        wire.eof_received()
    return wire


async def line(wire: ClientWire, limit: int = 1000) -> bytes:
    return await wire.read_line(limit, idle=1, deadline=wire.loop.time() + 1)


async def test_lines_come_one_at_a_time_with_their_line_end() -> None:
    wire = fed(b"EHLO a\r\nMAIL FROM:<x@y>\r\nbare\n")
    assert [await line(wire) for _ in range(3)] == [
        b"EHLO a\r\n",
        b"MAIL FROM:<x@y>\r\n",
        b"bare\n",
    ]
    with pytest.raises(ClientGone):
        await line(wire)


async def test_an_overlong_line_is_discarded_to_its_end_and_the_next_line_read() -> None:
    wire = fed(b"x" * 700, b"x" * 700, b"x" * 700 + b"\r\nNOOP\r\n")
    with pytest.raises(LineTooLong):
        await line(wire)
    assert await line(wire) == b"NOOP\r\n"
    assert len(wire._buffer) == 0


async def test_an_overlong_line_keeps_no_more_than_the_limit_in_memory() -> None:
    wire = fed(eof=False)
    task = wire.loop.create_task(line(wire, limit=100))
    for _ in range(100):
        wire.data_received(b"y" * 1000)
        await asyncio.sleep(0)
        assert len(wire._buffer) <= 1000
    wire.data_received(b"\r\n")
    with pytest.raises(LineTooLong):
        await task


async def test_silence_ends_a_read_as_idle_and_trickling_by_the_deadline() -> None:
    wire = fed(eof=False)
    with pytest.raises(ReadTimeout) as idle:
        await wire.read_line(100, idle=0.05, deadline=wire.loop.time() + 5)
    assert idle.value.idle
    task = wire.loop.create_task(wire.read_line(100, idle=5, deadline=wire.loop.time() + 0.2))
    with pytest.raises(ReadTimeout) as slow:
        for _ in range(100):
            wire.data_received(b"x")
            await asyncio.sleep(0.01)
            if task.done():
                break
        await task
    assert not slow.value.idle


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    done: list[asyncio.Task[None]] = []

    def factory() -> ClientWire:
        async def start(wire: ClientWire) -> None:
            try:
                await handler(wire)
            finally:
                wire.close()

        wire = ClientWire(start)
        return wire

    listener = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        for task in done:
            task.cancel()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    cert, key = make_cert(Path(tmp_path_factory.mktemp("wire-tls")))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def echo_after_tls(context: ssl.SSLContext) -> Handler:
    """Read one plaintext line, upgrade, then echo one encrypted line back."""

    async def handle(wire: ClientWire) -> None:
        await wire.read_line(100, 5, wire.loop.time() + 5)
        await wire.start_tls(context, timeout=5)
        got = await wire.read_line(100, 5, wire.loop.time() + 5)
        wire.write(b"echo " + got)
        await wire.drain(5)

    return handle


class MemoryTlsClient:
    """A TLS client over a plain stream, so its ClientHello can share a write with plaintext."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_tls().wrap_bio(self.incoming, self.outgoing)

    async def handshake(self, first: bytes) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
        self.writer.write(first + self.outgoing.read())
        while True:
            await self._receive()
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.writer.write(self.outgoing.read())
                continue
            self.writer.write(self.outgoing.read())
            return

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.writer.write(self.outgoing.read())
        await self.writer.drain()

    async def receive_line(self) -> bytes:
        buffered = b""
        while not buffered.endswith(b"\n"):
            try:
                buffered += self.tls.read(65536)
            except ssl.SSLWantReadError:
                await self._receive()
        return buffered

    async def _receive(self) -> None:
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        assert data, "the server closed the connection"
        self.incoming.write(data)


async def test_a_client_hello_read_together_with_plaintext_reaches_the_tls_layer(
    tls_context: ssl.SSLContext,
) -> None:
    async with server(echo_after_tls(tls_context)) as port:
        client = MemoryTlsClient(*await asyncio.open_connection("127.0.0.1", port))
        await client.handshake(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")
        await client.send(b"hello\r\n")
        assert await client.receive_line() == b"echo hello\r\n"
        client.writer.close()


async def test_an_encrypted_line_after_the_upgrade_is_read_as_plaintext(
    tls_context: ssl.SSLContext,
) -> None:
    async with server(echo_after_tls(tls_context)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\r\n")
        await writer.start_tls(client_tls())
        writer.write(b"hello\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"echo hello\r\n"
        writer.close()


async def test_plaintext_on_a_tls_upgrade_fails_the_handshake_and_closes() -> None:
    outcome: list[str] = []

    async def handle(wire: ClientWire) -> None:
        try:
            await wire.start_tls(_server_context_unused(), timeout=2)
        except TlsFailed:
            outcome.append("failed")
            assert wire.closed

    async with server(handle) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"EHLO not-tls\r\n" * 10)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert outcome == ["failed"]


def _server_context_unused() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
