"""One SMTP session: admission, PROXY header, TLS, greeting, the command loop, and its end.

``Session.run`` is the whole life of one client connection and the only place
that ends it: whatever happens (QUIT, EOF without QUIT, a reset, a timeout, a
failed TLS handshake, a drain, a bug) its ``finally`` releases the session's
counters and closes the socket, so nothing a client does can leave a session
counted or a socket in CLOSE-WAIT.

* Admission comes first, before any TLS: ``max_sessions`` overall, then, once
  the client address is known (after the PROXY header from a
  ``trusted_proxies`` peer), ``max_sessions_per_ip``. A refused client gets
  ``421 4.7.0`` (nothing on an implicit-TLS listener, where it could not read
  it) and is closed; the refusal (command ``CONNECT``) is a ``refused``
  event, as is a connection refused while draining.
* Implicit-TLS connections are upgraded before the greeting within
  ``tls_handshake_timeout``; STARTTLS discards whatever the client sent
  after the command before our ``220`` (STARTTLS injection).
* Clocks: ``idle_timeout`` (nothing received while we wait for the client,
  or the client not reading our replies), ``command_timeout`` (one whole
  command line or AUTH answer) and ``data_timeout`` (the whole message);
  each ends the session with ``421 4.4.2``.
* Every reply is a constant from ``replies`` with an enhanced status code; an
  unexpected error answers ``451 4.3.0`` (logged with the session id).
  Command lines longer than 1000 octets get ``500 5.5.2``, lines must end in
  CRLF, and ``max_errors`` counted errors end the session with ``421``.
* When ingress drains, sessions outside a transaction get ``421 4.3.2`` and
  open transactions may finish.

The commands themselves are in ``commands.py`` and ``auth.py``; the bytes on
the wire in ``wire.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from aiosmtpd.proxy_protocol import get_proxy

from postline.ingress import metrics, replies
from postline.ingress.auth import AuthCommands
from postline.ingress.commands import Commands, LineError, SessionTimeout
from postline.ingress.data import MAX_LINE, Content, check_content
from postline.ingress.policy import client_address, in_networks, limit_key
from postline.ingress.state import Connection, Listener, Shared, Transaction
from postline.ingress.wire import ClientGone, ClientWire, LineTooLong, ReadTimeout, TlsFailed
from postline.reply import SmtpReply

log = logging.getLogger("postline.ingress.session")
DRAIN_ALLOWED = frozenset({"RCPT", "DATA", "RSET", "NOOP", "QUIT"})


def session_factory(shared: Shared, listener: Listener) -> ClientWire:
    """A protocol object for one accepted connection (``loop.create_server``'s factory)."""
    metrics.CONNECTIONS.labels(listener.value).inc()
    return ClientWire(lambda wire: Session(shared, listener, wire).run())


class Session(AuthCommands, Commands):
    """The server side of one SMTP connection (see module docstring)."""

    def __init__(self, shared: Shared, listener: Listener, wire: ClientWire) -> None:
        self.shared = shared
        self.settings = shared.settings
        self.hostname = shared.hostname
        self.wire = wire
        self.loop = wire.loop
        self.conn = Connection(listener)
        self.txn: Transaction | None = None
        self._waiting_for_command = False
        self._counted = self._client_counted = False
        self._commands = self.command_table()

    # -- the whole life --------------------------------------------------------------------
    async def run(self) -> None:
        self.shared.remember(self)
        try:
            if await self._open():
                await self._serve()
        except SessionTimeout as timeout:
            self.abort(timeout.reply, "timeout")
        except (ClientGone, OSError):
            pass  # the client went away: nothing to answer
        except Exception:
            metrics.INTERNAL_ERRORS.inc()
            log.exception("session failed", extra=self.conn.log_fields())
        finally:
            self._release()
            self.wire.close()

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self.shared.sessions.release_total()
            metrics.ACTIVE_SESSIONS.dec()
        if self._client_counted:
            self._client_counted = False
            self.shared.sessions.release_client(self.conn.limit_key)
        self.shared.forget(self)

    async def _open(self) -> bool:
        """Admission, PROXY header, implicit TLS, greeting; False: refused and closed."""
        self._counted = self.shared.sessions.admit_total()
        if not self._counted:
            return self._refuse("max_sessions", replies.TOO_MANY_SESSIONS)
        metrics.ACTIVE_SESSIONS.inc()
        self.conn.peer_ip = self.conn.client_ip = client_address(self.wire.peer())
        if self.settings.proxy_protocol and not await self._read_proxy():
            return False
        self.conn.limit_key = limit_key(self.conn.client_ip)
        self._client_counted = self.shared.sessions.admit_client(self.conn.limit_key)
        if not self._client_counted:
            return self._refuse("max_sessions_per_ip", replies.TOO_MANY_FROM_YOU)
        if self.conn.listener is Listener.IMPLICIT_TLS and not await self.upgrade_tls("implicit"):
            return False
        if self.shared.draining:
            return self._refuse("draining", replies.SHUTTING_DOWN)
        self.conn.trusted = in_networks(self.conn.client_ip, self.settings.relay_networks)
        log.info("session opened", extra=self.conn.log_fields())
        await self.push(replies.greeting(self.hostname))
        return True

    def _refuse(self, reason: str, reply: SmtpReply) -> bool:
        """Refuse the connection with ``reply`` (and a ``refused`` event); False."""
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        if self.conn.client_ip is None:  # refused before its address was looked at
            self.conn.peer_ip = self.conn.client_ip = client_address(self.wire.peer())
        silent = self.conn.listener is Listener.IMPLICIT_TLS and not self.conn.tls
        self.shared.handler.refused(self.conn, "CONNECT", reason, None if silent else reply)
        if silent:
            self.wire.close()  # a TLS client cannot read a plaintext reply
        else:
            self.abort(reply, "refused")
        return False

    async def _read_proxy(self) -> bool:
        """The PROXY header of a trusted proxy (its client's address wins); False: closed."""
        trusted = in_networks(self.conn.peer_ip, self.settings.trusted_proxies)
        try:
            async with asyncio.timeout(self.settings.proxy_protocol_timeout):
                data = await get_proxy(_ProxyReader(self))
        except (TimeoutError, ClientGone, ReadTimeout, asyncio.IncompleteReadError):
            data = None
        if not trusted:
            log.warning(
                "connection from outside trusted_proxies refused", extra=self.conn.log_fields()
            )
            return self._close_after_reading("untrusted_proxy_peer")
        if not data:
            log.warning("missing or invalid PROXY header", extra=self.conn.log_fields())
            return self._close_after_reading("bad_proxy_header")
        if isinstance(data.src_addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            self.conn.client_ip = client_address(str(data.src_addr))
            self.conn.proxied = True
        return True

    def _close_after_reading(self, reason: str) -> bool:
        """Close without a reply, having read what the peer sent (a FIN, never a reset)."""
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        self.wire.discard_buffered()
        self.wire.close()
        return False

    async def _serve(self) -> None:
        while not self.wire.closed:
            if self.shared.draining and self.txn is None:
                self.abort(replies.SHUTTING_DOWN, "draining")
                return
            self._waiting_for_command = True
            try:
                line = await self.read_line()
            except LineError as error:
                await self.say(error.reply)
                continue
            finally:
                self._waiting_for_command = False
            await self._dispatch(line)

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
        except (SessionTimeout, LineError, ClientGone, OSError):
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

    # -- what the commands use -------------------------------------------------------------
    async def read_line(self) -> bytes:
        """One CRLF-terminated line of at most 1000 octets (CRLF removed)."""
        deadline = self.loop.time() + self.settings.command_timeout
        try:
            line = await self.wire.read_line(MAX_LINE, self.settings.idle_timeout, deadline)
        except LineTooLong:
            raise LineError(replies.LINE_TOO_LONG) from None
        except ReadTimeout:
            raise SessionTimeout(replies.TIMEOUT) from None
        if not line.endswith(b"\r\n"):
            raise LineError(replies.BARE_NEWLINE_COMMAND)
        return line[:-2]

    async def read_content(self) -> Content:
        """The message after ``354`` (``data.check_content`` decides what is refused)."""
        deadline = self.loop.time() + self.settings.data_timeout
        try:
            raw = await self.wire.read_data(
                self.settings.max_message_size, self.settings.idle_timeout, deadline
            )
        except ReadTimeout:
            raise SessionTimeout(replies.DATA_TIMEOUT) from None
        return await check_content(raw, self.shared.limits)

    async def push(self, status: str | bytes) -> None:
        text = status.encode() if isinstance(status, str) else status
        self.wire.write(text + b"\r\n")
        try:
            await self.wire.drain(self.settings.idle_timeout)
        except ReadTimeout:
            raise SessionTimeout(replies.TIMEOUT) from None

    async def say(self, reply: SmtpReply) -> None:
        """Send ``reply``; a permanent one counts toward ``max_errors``."""
        await self.push(str(reply))
        if reply.is_permanent:
            self.count_error()

    def count_error(self) -> None:
        """One more error in this session; ``max_errors`` of them end it with ``421``."""
        self.conn.errors += 1
        if self.conn.errors >= self.settings.max_errors:
            self.abort(replies.TOO_MANY_ERRORS, "too many errors")

    def discard_pending(self) -> int:
        """Drop input not read yet (what a client sent after STARTTLS); returns octets."""
        return self.wire.discard_buffered()

    async def upgrade_tls(self, mode: str) -> bool:
        """Start TLS on this connection (``starttls`` or ``implicit``); False: closed."""
        assert self.shared.tls is not None
        try:
            await self.wire.start_tls(self.shared.tls.context, self.settings.tls_handshake_timeout)
        except TlsFailed as error:
            metrics.TLS_HANDSHAKES.labels(mode, "failed").inc()
            log.info("TLS handshake failed: %s", error, extra=self.conn.log_fields())
            return False
        metrics.TLS_HANDSHAKES.labels(mode, "ok").inc()
        self.conn.tls = True
        self.conn.tls_version, self.conn.tls_cipher = self.wire.tls_info() or (None, None)
        self.conn.helo = None
        self.conn.esmtp = False
        self.txn = None
        return True

    # -- ending ----------------------------------------------------------------------------
    def drain_now(self) -> None:
        """Ingress is draining: end this session now if it is idle between transactions."""
        if self._waiting_for_command and self.txn is None:
            self.abort(replies.SHUTTING_DOWN, "draining")

    def abort(self, reply: SmtpReply, why: str) -> None:
        """Send ``reply`` without waiting and close the connection."""
        if self.wire.closed:
            return
        log.info("closing session: %s", why, extra=self.conn.log_fields())
        self.wire.write(f"{reply}\r\n".encode())
        self.wire.close()

    def close(self) -> None:
        self.wire.close()


class _ProxyReader:
    """What aiosmtpd's PROXY parser reads from: the session's wire, within the session clocks."""

    def __init__(self, session: Session) -> None:
        self._wire = session.wire
        self._idle = session.settings.proxy_protocol_timeout
        self._deadline = session.loop.time() + self._idle

    async def read(self, n: int = -1) -> bytes:
        return await self._wire.read_some(4096 if n < 0 else n, self._idle, self._deadline)

    async def readexactly(self, n: int) -> bytes:
        return await self._wire.read_exactly(n, self._idle, self._deadline)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return await self._wire.read_until(separator, 4096, self._idle, self._deadline)
