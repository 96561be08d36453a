"""A steerable SMTP sink for tests (KumoMTA's maildir-sink idea), on aiosmtpd.

The recipient's local part chooses what the sink does. A behaviour is a prefix
of the local part, optionally followed by a number ``N`` (``flaky2-abc``,
``slow0.5-x``, ``permfail@...``, ``permfail-7@...``):

==============  ====================================================================
prefix          behaviour
==============  ====================================================================
(none)          ``250`` at RCPT and after the final dot; the message is stored
``permfail``    ``550 5.1.1`` at RCPT, every time
``tempfail``    ``451 4.3.0`` at RCPT, every time
``flakyN``      ``451 4.3.0`` at RCPT for the first N (default 1) offers of that
                exact address to this sink, then accepted
``full``        ``452 4.2.2`` at RCPT (insufficient storage: temporary)
``quota``       ``552 5.2.2`` at RCPT (RFC 5321 says treat as temporary)
``goodbye``     ``421 4.3.2`` at RCPT, then the sink closes the connection
``dataperm``    accepted at RCPT; ``554 5.6.0`` after the final dot
``datatemp``    accepted at RCPT; ``451 4.3.0`` after the final dot
``data421``     accepted at RCPT; ``421 4.3.2`` after the final dot, then closes
``hangupN``     accepted at RCPT; after the final dot the sink closes the connection
                without any reply, the first N times that address is offered (no
                N: every time); the message is not stored
``slowN``       accepted; waits N seconds (default 1) before the end-of-data reply
``dripN``       accepted; the RCPT reply and the end-of-data reply are each sent
                one byte at a time (``250-`` continuation lines) for about N
                seconds (default 1): a tarpit no per-read timeout catches
==============  ====================================================================

End-of-data behaviours are taken from the first accepted recipient that has one.
Messages with several recipients are stored once, listing the accepted ones.

The sender's local part steers MAIL FROM: ``permfail...`` gets ``550 5.1.0``,
``tempfail...`` ``451 4.3.0``, ``goodbye...`` ``421 4.3.2`` and a hang-up.

Options: ``users`` (``{name: password}``) offers AUTH after STARTTLS and then
requires it for MAIL (a smarthost); ``size_limit`` is the ``SIZE`` announced
and enforced; ``smtputf8=False`` stops announcing ``SMTPUTF8``. ``peak_data``
is the largest number of transactions that were between the final dot and
the reply at the same time (for concurrency caps); ``auth_logins`` lists the
user names that authenticated.

``messages`` holds what was stored (raw bytes, ``decode_data=False``);
``attempts`` holds every RCPT address offered with the reply code given;
``wait_for(count, timeout)`` blocks until ``count`` messages are stored. The
sink runs in its own thread (aiosmtpd ``Controller``); everything is guarded
by a lock. With ``tls_cert``/``tls_key`` it offers STARTTLS (not required);
``tests.support.certs.make_cert`` makes a certificate for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.net import free_port

_BEHAVIOUR = re.compile(
    r"^(permfail|tempfail|flaky|full|quota|goodbye|dataperm|datatemp|data421|hangup|slow|drip)"
    r"(\d+(?:\.\d+)?)?"
)
_RCPT_REPLIES = {
    "permfail": "550 5.1.1 No such user here",
    "tempfail": "451 4.3.0 Try again later",
    "full": "452 4.2.2 Mailbox full, try again later",
    "quota": "552 5.2.2 Over quota",
}
_DATA_REPLIES = {
    "dataperm": "554 5.6.0 Message content rejected",
    "datatemp": "451 4.3.0 Temporary failure after data",
}
_DATA_KINDS = ("dataperm", "datatemp", "data421", "hangup", "slow", "drip")
_DRIP_INTERVAL = 0.05


@dataclass(frozen=True)
class Received:
    """One message the sink stored."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: str
    tls: bool = False
    helo: str | None = None
    """The name the client gave in HELO/EHLO."""


def behaviour(address: str) -> tuple[str, float | None]:
    """``("flaky", 2.0)`` for ``flaky2-abc@x.test``; ``("", None)`` for plain addresses."""
    local = address.rpartition("@")[0] or address
    match = _BEHAVIOUR.match(local.lower())
    if match is None:
        return "", None
    number = match.group(2)
    return match.group(1), float(number) if number is not None else None


_MAIL_REPLIES = {
    "permfail": "550 5.1.0 Sender rejected",
    "tempfail": "451 4.3.0 Sender deferred, try again later",
    "goodbye": "421 4.3.2 Closing connection",
}


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        kind, _ = behaviour(address)
        reply = _MAIL_REPLIES.get(kind)
        if reply is None:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 2.1.0 OK"
        if kind == "goodbye":
            await server.push(reply)
            _close(server)
        return reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        kind, number = behaviour(address)
        reply = "250 2.1.5 OK"
        if kind in _RCPT_REPLIES:
            reply = _RCPT_REPLIES[kind]
        elif kind == "flaky" and self.sink._offers(address) <= int(number or 1):
            reply = "451 4.3.0 Flaky, try again later"
        elif kind == "goodbye":
            reply = "421 4.3.2 Closing connection"
        self.sink._record_attempt(address, int(reply[:3]))
        if kind == "goodbye":
            await server.push(reply)
            _close(server)
            return reply
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
            if kind == "drip":
                await _drip(server, number or 1.0)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.sink._in_data():
            return await self._data(server, session, envelope)

    async def _data(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        kind, number, address = self._data_behaviour(envelope)
        if kind == "hangup" and (number is None or self.sink._hangups(address) <= int(number)):
            _close(server, abort=True)
            return "250 2.0.0 never seen by the client"
        if kind in _DATA_REPLIES:
            return _DATA_REPLIES[kind]
        if kind == "data421":
            await server.push("421 4.3.2 Closing connection")
            _close(server)
            return "421 4.3.2 Closing connection"
        if kind == "slow":
            await asyncio.sleep(number if number is not None else 1.0)
        if kind == "drip":
            await _drip(server, number or 1.0)
        if _transport(server) is None:
            return "451 4.3.0 client went away"
        self.sink._store(session, envelope)
        return "250 2.0.0 Ok: stored"

    @staticmethod
    def _data_behaviour(envelope: Envelope) -> tuple[str, float | None, str]:
        for address in envelope.rcpt_tos:
            kind, number = behaviour(address)
            if kind in _DATA_KINDS:
                return kind, number, address
        return "", None, ""


async def _drip(server: SMTP, seconds: float) -> None:
    """Send ``250-`` continuation lines one byte at a time for about ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for byte in b"250-tarpit\r\n":
            transport = _transport(server)
            if transport is None:
                return
            transport.write(bytes([byte]))
            await asyncio.sleep(_DRIP_INTERVAL)


def _transport(server: SMTP) -> asyncio.Transport | None:
    """The session's open transport, or None once it is closing."""
    transport = cast("asyncio.Transport | None", server.transport)
    return None if transport is None or transport.is_closing() else transport


def _close(server: SMTP, abort: bool = False) -> None:
    transport = _transport(server)
    if transport is not None:
        transport.abort() if abort else transport.close()


class SmtpSink:
    """See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        *,
        users: dict[str, str] | None = None,
        size_limit: int | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.messages: list[Received] = []
        self.attempts: list[tuple[str, int]] = []
        self.auth_logins: list[str] = []
        self.peak_data = 0
        self._busy = 0
        self._users = users
        self._size_limit = size_limit
        self._smtputf8 = smtputf8
        self._lock = threading.Lock()
        self._offered: Counter[str] = Counter()
        self._hung_up: Counter[str] = Counter()
        self._tls: ssl.SSLContext | None = None
        if tls_cert and tls_key:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(tls_cert, tls_key)
        self._controller: Controller | None = None

    def start(self) -> None:
        if self.port == 0:
            self.port = free_port(self.host)  # Controller cannot listen on port 0
        kwargs: dict[str, Any] = {
            "decode_data": False,
            "ident": "postline-test-sink",
            "enable_SMTPUTF8": self._smtputf8,
        }
        if self._tls is not None:
            kwargs["tls_context"] = self._tls
        if self._size_limit is not None:
            kwargs["data_size_limit"] = self._size_limit
        if self._users is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_require_tls=True, auth_required=True
            )
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Block until ``count`` messages are stored; ``AssertionError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
                have = len(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"sink got {have} of {count} messages within {timeout}s; "
                    f"RCPT attempts: {self.attempts}"
                )
            time.sleep(0.02)

    # -- called from the sink's thread ----------------------------------------------------
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self._users is None:
            return AuthResult(success=False, handled=False)
        login = data.login.decode()
        ok = self._users.get(login) == data.password.decode()
        if ok:
            with self._lock:
                self.auth_logins.append(login)
        return AuthResult(success=ok, handled=False)

    @contextlib.contextmanager
    def _in_data(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
            self.peak_data = max(self.peak_data, self._busy)
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _offers(self, address: str) -> int:
        with self._lock:
            self._offered[address] += 1
            return self._offered[address]

    def _hangups(self, address: str) -> int:
        with self._lock:
            self._hung_up[address] += 1
            return self._hung_up[address]

    def _record_attempt(self, address: str, code: int) -> None:
        with self._lock:
            self.attempts.append((address, code))

    def _store(self, session: Session, envelope: Envelope) -> None:
        peer = session.peer
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            tls=session.ssl is not None,
            helo=session.host_name,
        )
        with self._lock:
            self.messages.append(received)
