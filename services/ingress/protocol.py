"""One SMTP session: aiosmtpd's protocol object, made strict.

``IngressSMTP`` keeps aiosmtpd's transport plumbing (``StreamReaderProtocol``,
the STARTTLS transport swap that discards injected plaintext, the PROXY
header parser) and replaces its command loop, so that:

* every reply is a constant from ``replies`` with an enhanced status code, and
  an unexpected error answers ``451 4.3.0`` (logged with the session id), never
  aiosmtpd's ``500 Error: (...)``;
* command lines longer than 1000 octets get ``500 5.5.2``, lines must end in
  CRLF, and ``max_errors`` permanent replies end the session with ``421``;
* the session admits itself against ``max_sessions`` and
  ``max_sessions_per_ip``, reads a PROXY header only from ``trusted_proxies``,
  and upgrades implicit-TLS connections before the greeting;
* three clocks bound a client: ``idle_timeout`` (nothing received while we
  wait for it), ``command_timeout`` (one line, AUTH answer or handshake) and
  ``data_timeout`` (the whole message); each ends with ``421 4.4.2``;
* when ingress drains, sessions outside a transaction get ``421 4.3.2`` and
  open transactions may finish.

The commands themselves are in ``commands.py`` and ``auth.py``.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import ipaddress
import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import SMTP

from postline.ingress import metrics, replies
from postline.ingress.auth import AuthCommands
from postline.ingress.commands import Commands, LineError, SessionTimeout
from postline.ingress.policy import client_address, in_networks, limit_key
from postline.ingress.state import Connection, Listener, Shared, Transaction
from postline.reply import SmtpReply

log = logging.getLogger("postline.ingress.session")
T = TypeVar("T")
MAX_COMMAND_LINE = 1000
DRAIN_ALLOWED = frozenset({"RCPT", "DATA", "RSET", "NOOP", "QUIT"})


class IngressSMTP(AuthCommands, Commands, SMTP):
    """The server side of one SMTP connection (see module docstring)."""

    def __init__(self, shared: Shared, listener: Listener) -> None:
        # Not SMTP.__init__: on every connection it introspects this class and the
        # handler (inspect.getmembers, dir) for tables only its replaced command loop
        # reads, about 90 us a connection. Set just what the kept plumbing
        # (connection_made/lost, eof_received, _cb_client_connected) uses.
        self.loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.line_length_limit, loop=self.loop)
        asyncio.StreamReaderProtocol.__init__(
            self, reader, client_connected_cb=self._cb_client_connected, loop=self.loop
        )
        self.hostname = shared.settings.hostname
        self.session = None
        self.envelope = None
        self.transport = None
        self._timeout_handle = None
        self._tls_protocol = None
        self._original_transport = None
        self._handler_coroutine = None
        self._handle_hooks = {}  # connection_made looks up a STARTTLS hook: there is none
        self._tls_handshake_okay = True
        self.shared = shared
        self.settings = shared.settings
        self.conn = Connection(listener)
        self.txn: Transaction | None = None
        self._waiting = False
        self._last_input = 0.0
        self._counted = False
        self._client_counted = False
        self._commands = self.command_table()

    # -- connection lifecycle ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._counted = self.shared.sessions.admit_total()
            self.shared.remember(self)
            metrics.CONNECTIONS.labels(self.conn.listener.value).inc()
            if self._counted:
                metrics.ACTIVE_SESSIONS.inc()

    def connection_lost(self, error: Exception | None) -> None:
        self.shared.forget(self)
        if self._counted:
            self._counted = False
            self.shared.sessions.release_total()
            metrics.ACTIVE_SESSIONS.dec()
        if self._client_counted:
            self._client_counted = False
            self.shared.sessions.release_client(self.conn.limit_key)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self._last_input = self.loop.time()
        super().data_received(data)

    def drain_now(self) -> None:
        """Ingress is draining: end this session now if it is idle between transactions."""
        if self._waiting and self.txn is None:
            self.abort(replies.SHUTTING_DOWN, "draining")

    def abort(self, reply: SmtpReply, why: str) -> None:
        """Send ``reply`` without waiting and close the connection."""
        if self.transport is None:
            return
        log.info("closing session: %s", why, extra=self.conn.log_fields())
        self._writer.write(f"{reply}\r\n".encode())
        self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- idle watchdog (aiosmtpd's timer, reused) --------------------------------------------
    def _reset_timeout(self, duration: float | None = None) -> None:
        self._last_input = self.loop.time()
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._timeout_handle = self.loop.call_later(self.settings.idle_timeout, self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self.transport is None:
            return
        idle = self.settings.idle_timeout
        remaining = self._last_input + idle - self.loop.time()
        if self._waiting and remaining <= 0:
            self.abort(replies.TIMEOUT, "idle timeout")
            return
        delay = max(remaining, 0.01) if self._waiting else idle
        self._timeout_handle = self.loop.call_later(delay, self._timeout_cb)

    async def wait_for_client(self, work: Awaitable[T], deadline: float | None) -> T:
        """Await ``work`` (reading from, or writing to, the client) under the idle clock."""
        self._waiting = True
        self._last_input = self.loop.time()
        try:
            async with asyncio.timeout_at(deadline):
                return await work
        finally:
            self._waiting = False

    async def push(self, status: str | bytes) -> None:
        text = status.encode() if isinstance(status, str) else status
        self._writer.write(text + b"\r\n")
        await self.wait_for_client(self._writer.drain(), None)

    async def say(self, reply: SmtpReply) -> None:
        """Send ``reply``; too many permanent errors end the session."""
        await self.push(str(reply))
        if reply.is_permanent:
            self.conn.errors += 1
            if self.conn.errors >= self.settings.max_errors:
                self.abort(replies.TOO_MANY_ERRORS, "too many errors")

    # -- the session -------------------------------------------------------------------------
    async def _handle_client(self) -> None:
        try:
            if await self._open():
                await self._serve()
        except SessionTimeout as timeout:
            self.abort(timeout.reply, "timeout")
        except (OSError, asyncio.IncompleteReadError):  # reset, broken TLS, ...
            self.close()
        except Exception:
            metrics.INTERNAL_ERRORS.inc()
            log.exception("session failed", extra=self.conn.log_fields())
            self.close()

    async def _open(self) -> bool:
        """Admission, PROXY header, implicit TLS, limits, greeting; False: closed."""
        if not self._counted:
            metrics.CONNECTIONS_REFUSED.labels("max_sessions").inc()
            return self._refuse(replies.TOO_MANY_SESSIONS)
        peer = self.transport.get_extra_info("peername") if self.transport else None
        self.conn.peer_ip = self.conn.client_ip = client_address(peer[0] if peer else None)
        if self.settings.proxy_protocol and not await self._read_proxy():
            return False
        if self.conn.listener is Listener.IMPLICIT_TLS and not await self.upgrade_tls("implicit"):
            return False
        if self.shared.draining:
            metrics.CONNECTIONS_REFUSED.labels("draining").inc()
            return self._refuse(replies.SHUTTING_DOWN)
        self.conn.limit_key = limit_key(self.conn.client_ip)
        if not self.shared.sessions.admit_client(self.conn.limit_key):
            metrics.CONNECTIONS_REFUSED.labels("max_sessions_per_ip").inc()
            return self._refuse(replies.TOO_MANY_FROM_YOU)
        self._client_counted = True
        self.conn.trusted = in_networks(self.conn.client_ip, self.settings.relay_networks)
        log.info("session opened", extra=self.conn.log_fields())
        await self.push(replies.greeting(self.hostname))
        return True

    def _refuse(self, reply: SmtpReply) -> bool:
        if self.conn.listener is Listener.IMPLICIT_TLS and not self.conn.tls:
            self.close()  # a TLS client cannot read a plaintext reply
        else:
            self.abort(reply, "refused")
        return False

    async def _read_proxy(self) -> bool:
        if not in_networks(self.conn.peer_ip, self.settings.trusted_proxies):
            metrics.CONNECTIONS_REFUSED.labels("untrusted_proxy_peer").inc()
            log.warning(
                "connection from outside trusted_proxies refused", extra=self.conn.log_fields()
            )
            self.close()
            return False
        try:
            async with asyncio.timeout(self.settings.proxy_protocol_timeout):
                data = await get_proxy(self._reader)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            data = None
        if not data:
            metrics.CONNECTIONS_REFUSED.labels("bad_proxy_header").inc()
            log.warning("missing or invalid PROXY header", extra=self.conn.log_fields())
            self.close()
            return False
        if isinstance(data.src_addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            self.conn.client_ip = client_address(str(data.src_addr))
            self.conn.proxied = True
        return True

    async def _serve(self) -> None:
        while self.transport is not None:
            if self.shared.draining and self.txn is None:
                self.abort(replies.SHUTTING_DOWN, "draining")
                return
            try:
                await self._dispatch(await self.read_line())
            except LineError as error:
                await self.say(error.reply)

    async def read_line(self) -> bytes:
        """One CRLF-terminated line of at most 1000 octets, within ``command_timeout``."""
        deadline = self.loop.time() + self.settings.command_timeout
        try:
            line = await self.wait_for_client(self._reader.readuntil(b"\n"), deadline)
        except asyncio.LimitOverrunError as overrun:
            await self.wait_for_client(self._discard_line(overrun.consumed), deadline)
            raise LineError(replies.LINE_TOO_LONG) from None
        except TimeoutError:
            raise SessionTimeout(replies.TIMEOUT) from None
        if len(line) > MAX_COMMAND_LINE:
            raise LineError(replies.LINE_TOO_LONG)
        if not line.endswith(b"\r\n"):
            raise LineError(replies.BARE_NEWLINE_COMMAND)
        return line[:-2]

    async def _discard_line(self, consumed: int) -> None:
        while True:
            await self._reader.readexactly(consumed)
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as overrun:
                consumed = overrun.consumed

    async def _dispatch(self, line: bytes) -> None:
        verb_bytes, _, arg_bytes = line.partition(b" ")
        if not verb_bytes.isascii() or not verb_bytes.isalpha() or b"\x00" in arg_bytes:
            await self.say(replies.BAD_SYNTAX)
            return
        verb = verb_bytes.decode().upper()
        in_transaction = self.txn is not None and verb in DRAIN_ALLOWED
        if self.shared.draining and not in_transaction and verb != "QUIT":
            self.abort(replies.SHUTTING_DOWN, "draining")
            return
        command = self._commands.get(verb)
        if command is None:
            await self._unknown(verb)
            return
        arg = arg_bytes.decode("utf-8", errors="surrogateescape").strip(" ")
        try:
            await command(arg)
        except (SessionTimeout, LineError, OSError, asyncio.IncompleteReadError):
            raise  # the session itself is over or out of step; not a policy failure
        except Exception:
            metrics.INTERNAL_ERRORS.inc()
            log.exception("unexpected error in %s", verb, extra=self.conn.log_fields())
            self.txn = None
            await self.say(replies.TRY_AGAIN)

    async def _unknown(self, verb: str) -> None:
        if verb == "PROXY":
            log.warning("PROXY header from a client refused", extra=self.conn.log_fields())
            await self.push(str(replies.PROXY_REFUSED))
            self.close()
            return
        await self.say(replies.UNKNOWN_COMMAND)

    # -- TLS -------------------------------------------------------------------------------
    async def upgrade_tls(self, mode: str) -> bool:
        """Start TLS on this connection (STARTTLS or implicit); False: closed."""
        assert self.shared.tls is not None and self.transport is not None
        transport = self.transport
        waiter = self.loop.create_future()
        tls = sslproto.SSLProtocol(
            self.loop,
            self,
            self.shared.tls.context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=max(1, int(self.settings.command_timeout)),
        )
        buffered: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        pending = bytes(buffered) if mode == "implicit" else b""
        buffered.clear()  # STARTTLS: plaintext sent after the command is discarded
        self._tls_protocol = tls
        self._original_transport = transport
        transport.set_protocol(tls)
        self.transport = tls._app_transport
        tls.connection_made(transport)
        if pending:
            _feed(tls, pending)
        if not transport.is_reading():  # type: ignore[attr-defined]
            transport.resume_reading()  # type: ignore[attr-defined]
        try:
            await waiter
        except Exception as error:
            metrics.TLS_HANDSHAKES.labels(mode, "failed").inc()
            log.info("TLS handshake failed: %s", error, extra=self.conn.log_fields())
            transport.close()
            return False
        metrics.TLS_HANDSHAKES.labels(mode, "ok").inc()
        self.conn.tls = True
        self.conn.helo = None
        self.conn.esmtp = False
        self.txn = None
        return True


def _feed(protocol: sslproto.SSLProtocol, data: bytes) -> None:
    """Hand bytes that arrived before the TLS layer existed to it (ClientHello)."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]
