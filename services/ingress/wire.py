"""The byte stream of one client connection: reads with deadlines, writes, TLS upgrades.

``ClientWire`` is the asyncio protocol of every ingress connection. It is ours
(no aiosmtpd protocol object, no ``StreamReader`` internals), so its whole life
is visible in one place:

* ``connection_made`` starts the session coroutine (``start(wire)``); the
  session owns the connection from then on and always ends it through its
  own ``finally`` (counters released, transport closed), whatever happened:
  EOF, reset, timeout, a failed TLS handshake, cancellation.
* Reads come from one buffer. ``read_line`` returns one line (CRLF or bare LF
  included) of at most ``limit`` octets, or raises ``LineTooLong`` after
  discarding the rest of that line (memory stays bounded). ``read_data``
  collects DATA content up to the ``CRLF . CRLF`` that ends it and leaves
  whatever follows (pipelined commands) in the buffer. Every wait for input is
  bounded twice: ``idle`` seconds without any byte, and an absolute
  ``deadline``; past either, ``ReadTimeout`` (``idle`` tells which).
  EOF or a lost connection raise ``ClientGone``.
* Back-pressure: reading pauses while more than ``HIGH_WATER`` octets wait
  unread; ``drain`` waits (bounded) while the kernel send buffer is full.
* ``start_tls`` upgrades in place with ``loop.start_tls`` (public API). Bytes
  that arrived before the TLS layer took over (a ClientHello read together
  with a PROXY header, or sent right after our ``220``) are handed to it in
  order (``_hand_over``: the one place that relies on how asyncio installs
  its TLS protocol; tests/unit/ingress/test_wire.py pins it). What the client
  sent after ``STARTTLS`` before our ``220`` is discarded by the caller
  (``discard_buffered``): the STARTTLS injection defence.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

HIGH_WATER = 256 * 1024
END_OF_DATA = b"\r\n.\r\n"
Start = Callable[["ClientWire"], Coroutine[Any, Any, None]]


class ClientGone(Exception):
    """The client closed (EOF) or reset the connection."""


class ReadTimeout(Exception):
    """No input in time: ``idle`` (nothing received) or the overall deadline passed."""

    def __init__(self, idle: bool) -> None:
        super().__init__("idle timeout" if idle else "deadline passed")
        self.idle = idle


class LineTooLong(Exception):
    """A line longer than the limit; it was read to its end and discarded."""


class TlsFailed(Exception):
    """The TLS handshake failed or timed out; the connection is closed."""


@dataclass(frozen=True)
class RawData:
    """DATA content as sent (transparency dots still in), or only its size when too big."""

    wire: bytes | None
    size: int


class ClientWire(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, start: Start) -> None:
        self._start = start
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.last_input = self.loop.time()
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not again after a TLS upgrade
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.task = self.loop.create_task(self._start(self))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self.last_input = self.loop.time()
        if len(self._buffer) > HIGH_WATER and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._gone = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._can_write.set()
        self._wake()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- facts -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def peer(self) -> str | None:
        """The peer's IP address as the socket reports it."""
        info = self.transport.get_extra_info("peername") if self.transport else None
        return str(info[0]) if info else None

    def tls_info(self) -> tuple[str, str] | None:
        """(TLS version, cipher name) once encrypted, else None."""
        cipher = self.transport.get_extra_info("cipher") if self.transport else None
        return (str(cipher[1]), str(cipher[0])) if cipher else None

    # -- reading ---------------------------------------------------------------------------
    async def read_line(self, limit: int, idle: float, deadline: float) -> bytes:
        """One line (with its line end) of at most ``limit`` octets; see module docstring."""
        self.last_input = max(self.last_input, self.loop.time())
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                self._resume_reading()
                if len(line) > limit:
                    raise LineTooLong
                return line
            if len(self._buffer) > limit:
                await self._discard_line(idle, deadline)
                raise LineTooLong
            scanned = len(self._buffer)
            await self._more(idle, deadline)

    async def _discard_line(self, idle: float, deadline: float) -> None:
        while (end := self._buffer.find(b"\n")) < 0:
            self._buffer.clear()
            self._resume_reading()
            await self._more(idle, deadline)
        del self._buffer[: end + 1]

    async def read_data(self, max_size: int, idle: float, deadline: float) -> RawData:
        """DATA content up to (not including) the final ``.`` line; see module docstring.

        ``wire`` is the content with its last CRLF and transparency dots, or
        None when it holds more than ``max_size`` octets once the dots are
        removed; then only the last few octets are kept while reading on to
        the end, so memory stays within ``max_size`` plus one read.
        """
        self.last_input = max(self.last_input, self.loop.time())
        content = bytearray(b"\r\n")  # the CRLF that ended DATA starts the first line
        scanned = counted = dots = dropped = 0
        while True:
            content += self._buffer
            self._buffer.clear()
            self._resume_reading()
            end = content.find(END_OF_DATA, scanned)
            if end >= 0:
                self._buffer += memoryview(content)[end + len(END_OF_DATA) :]
                if dropped:
                    return RawData(None, dropped + end)
                size = end - content.count(b"\r\n.", 0, end)
                if size > max_size:
                    return RawData(None, size)
                return RawData(bytes(memoryview(content)[2 : end + 2]), size)
            scanned = max(len(content) - len(END_OF_DATA) + 1, 0)
            dots += content.count(b"\r\n.", counted)
            counted = max(len(content) - 2, 0)
            if dropped or len(content) - 2 - dots > max_size:
                keep = bytes(content[-(len(END_OF_DATA) - 1) :])
                dropped += len(content) - len(keep)
                content[:] = keep
                scanned = counted = dots = 0
            await self._more(idle, deadline)

    async def read_some(self, n: int, idle: float, deadline: float) -> bytes:
        """Between 1 and ``n`` octets, as soon as any are there."""
        while not self._buffer:
            await self._more(idle, deadline)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._resume_reading()
        return data

    async def read_exactly(self, n: int, idle: float, deadline: float) -> bytes:
        while len(self._buffer) < n:
            await self._more(idle, deadline)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._resume_reading()
        return data

    async def read_until(self, separator: bytes, limit: int, idle: float, deadline: float) -> bytes:
        """Up to and including ``separator``; ``LineTooLong`` past ``limit`` octets."""
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > limit:
                raise LineTooLong
            await self._more(idle, deadline)
        data = bytes(self._buffer[: end + len(separator)])
        del self._buffer[: end + len(separator)]
        self._resume_reading()
        return data

    def discard_buffered(self) -> int:
        """Drop whatever the client sent that was not read yet; returns how many octets."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._resume_reading()
        return dropped

    def take_buffered(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    async def _more(self, idle: float, deadline: float) -> None:
        """Wait until more input arrives; ``ClientGone`` / ``ReadTimeout`` otherwise."""
        if self._gone:
            raise ClientGone
        quiet_until = self.last_input + idle
        until = min(quiet_until, deadline)
        waiter = self._waiter = self.loop.create_future()
        try:
            async with asyncio.timeout_at(until):
                await waiter
        except TimeoutError:
            raise ReadTimeout(idle=quiet_until <= deadline) from None
        finally:
            self._waiter = None
        if self.gone and not self._buffer:
            raise ClientGone

    @property
    def gone(self) -> bool:
        """The client sent EOF or the connection was lost."""
        return self._gone

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._buffer) <= HIGH_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            assert self.transport is not None
            self.transport.write(data)

    async def drain(self, idle: float) -> None:
        """Wait (at most ``idle`` s) until the client reads what we wrote."""
        if self._can_write.is_set():
            return
        try:
            async with asyncio.timeout(idle):
                await self._can_write.wait()
        except TimeoutError:
            raise ReadTimeout(idle=True) from None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- TLS -------------------------------------------------------------------------------
    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Encrypt the connection (server side) within ``timeout`` s; ``TlsFailed`` otherwise."""
        assert self.transport is not None
        raw = self.transport
        upgrade = asyncio.ensure_future(
            self.loop.start_tls(raw, self, context, server_side=True, ssl_handshake_timeout=timeout)
        )
        await self._hand_over(raw, upgrade)
        try:
            async with asyncio.timeout(timeout + 1):
                encrypted = await upgrade
        except Exception as error:  # OSError, ssl.SSLError, a timeout: all mean "no TLS"
            raw.close()
            raise TlsFailed(str(error) or type(error).__name__) from None
        if encrypted is None:
            raw.close()
            raise TlsFailed("connection lost during the handshake")
        self.transport = encrypted

    async def _hand_over(self, raw: asyncio.Transport, upgrade: asyncio.Future[Any]) -> None:
        """Give the TLS layer the bytes that reached us before it took over, in order.

        ``loop.start_tls`` pauses reading and installs its protocol on the raw
        transport in its first step, before it awaits the handshake; we wait
        for that switch, then feed what we buffered to the new protocol (a
        ``BufferedProtocol``) before it can receive anything from the socket.
        """
        while raw.get_protocol() is self and not upgrade.done():  # noqa: ASYNC110 (no event)
            await asyncio.sleep(0)
        pending = self.take_buffered()
        tls = raw.get_protocol()
        if not pending or tls is self or not isinstance(tls, asyncio.BufferedProtocol):
            return
        view = memoryview(pending)
        while view:
            target = memoryview(tls.get_buffer(len(view)))
            size = min(len(target), len(view))
            target[:size] = view[:size]
            tls.buffer_updated(size)
            view = view[size:]
