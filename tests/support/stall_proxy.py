"""A TCP proxy that can stall: a broker that stops answering without going down.

``StallProxy(upstream)`` listens on a free loopback port and forwards every
connection to ``upstream`` (host, port), byte for byte, in both directions.
``stall()`` stops forwarding in both directions at once: connections stay
open, nothing is closed or reset, what arrives is held (and, once a read is
held, TCP back-pressure stops the sender), so to the client the broker has
simply stopped answering. ``resume()`` forwards what was held, in order, and
carries on. ``held_bytes`` is what is being held right now, ``stalled_bytes``
what has arrived during stalls so far (a test checks that its stall caught
the traffic it meant to catch).

The proxy runs its own event loop in a daemon thread, so sync tests (threads,
subprocesses) and async tests (on their own loop) use it the same way; every
method is thread-safe and returns once the proxy applied it: after
``stall()`` returns, not one more byte is forwarded. ``url`` is the test
broker's AMQP URL pointed at the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tests.support.broker import BROKER_URL

T = TypeVar("T")
_CHUNK = 65536


def broker_address(url: str = BROKER_URL) -> tuple[str, int]:
    """The (host, port) an AMQP URL points at."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


class StallProxy:
    """See the module docstring."""

    def __init__(self, upstream: tuple[str, int] | None = None, host: str = "127.0.0.1") -> None:
        self.upstream = upstream or broker_address()
        self.host = host
        self.port = 0
        self.held_bytes = 0
        self.stalled_bytes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``BROKER_URL`` (credentials, vhost) with the proxy as host and port."""
        parts = urlsplit(BROKER_URL)
        credentials, at, _ = parts.netloc.rpartition("@")
        netloc = f"{credentials}{at}{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # -- control (any thread) ---------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stall(self) -> None:
        """Stop forwarding, both directions, connections kept open."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Forward what was held and go on forwarding."""
        self._call(self._set_flowing(True))

    def close(self) -> None:
        """Close the listener and every forwarded connection; stop the thread."""
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> StallProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the proxy's loop -------------------------------------------------------------------
    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._flowing is not None:
            self._flowing.set()  # held pumps wake up, find their peers gone, and end

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _pump(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await source.read(_CHUNK):
                if not self._flowing.is_set():
                    self.held_bytes += len(data)
                    self.stalled_bytes += len(data)
                    while not self._flowing.is_set():  # a quick resume-and-stall holds on
                        await self._flowing.wait()
                    self.held_bytes -= len(data)
                target.write(data)  # no await between the flowing check and the write
                await target.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                target.close()
