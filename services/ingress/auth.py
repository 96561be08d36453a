"""AUTH PLAIN and LOGIN (RFC 4954, 4616), only over TLS, with brute-force lockout.

Reply matrix: success ``235 2.7.0``; wrong password or unknown user
``535 5.7.8`` (after ``auth_failure_delay``, the same for both); no TLS
``538 5.7.11``; before EHLO, twice, or inside a transaction ``503 5.5.1``;
unknown mechanism ``504 5.5.4``; bad base64 or a malformed PLAIN message
``501 5.5.2``; ``*`` cancels with ``501 5.7.0``.

Lockout: ``auth_max_failures`` failures within ``auth_failure_window`` from
one client address (IPv6: /64), or for one user name, refuse AUTH from that
address / for that name with ``454 4.7.0`` for ``auth_lockout`` seconds
(without checking the password, so a locked account gives nothing away).
Three failures in one session end it with ``421 4.7.0``.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from base64 import b64decode, b64encode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from postline.ingress import metrics, replies
from postline.ingress.limits import FailureTracker
from postline.ingress.state import Connection, Shared, Transaction
from postline.ingress.users import PasswordChecker, UserStore
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.ingress.settings import IngressSettings

log = logging.getLogger("postline.ingress.auth")
SESSION_FAILURES = 3
MECHANISMS = ("PLAIN", "LOGIN")
Credentials = tuple[str, str]


class Authenticator:
    """Checks credentials against the users file and keeps the failure counts."""

    def __init__(
        self, settings: IngressSettings, users: UserStore, checker: PasswordChecker
    ) -> None:
        self.users = users
        self._checker = checker
        self.failure_delay = settings.auth_failure_delay
        window, lockout = settings.auth_failure_window, settings.auth_lockout
        self._by_client = FailureTracker(settings.auth_max_failures, window, lockout)
        self._by_user = FailureTracker(settings.auth_max_failures, window, lockout)

    def client_locked(self, conn: Connection) -> bool:
        return self._by_client.locked(conn.limit_key)

    async def authenticate(self, conn: Connection, name: str, password: str) -> bool | None:
        """True: valid; False: invalid; None: locked out (nothing was checked)."""
        if self._by_client.locked(conn.limit_key) or self._by_user.locked(name):
            return None
        user = await self.users.get(name)
        if await self._checker.verify(user, password):
            self._by_client.succeeded(conn.limit_key)
            self._by_user.succeeded(name)
            return True
        if self._by_client.failed(conn.limit_key):
            metrics.AUTH_LOCKOUTS.labels("ip").inc()
            log.warning("AUTH lockout for a client address", extra=conn.log_fields())
        if self._by_user.failed(name):
            metrics.AUTH_LOCKOUTS.labels("user").inc()
            log.warning("AUTH lockout for a user", extra={**conn.log_fields(), "user": name})
        return False


class AuthCommands:
    """The AUTH command; expects the attributes ``IngressSMTP`` provides."""

    shared: Shared
    conn: Connection
    txn: Transaction | None
    push: Callable[[str], Awaitable[None]]
    say: Callable[[SmtpReply], Awaitable[None]]
    read_line: Callable[[], Awaitable[bytes]]
    abort: Callable[[SmtpReply, str], None]

    async def smtp_AUTH(self, arg: str) -> None:
        refusal = self._auth_refusal(arg)
        if refusal is not None:
            await self.say(refusal)
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if self.shared.authenticator.client_locked(self.conn):
            metrics.AUTH_RESULTS.labels(mechanism, "locked").inc()
            await self.say(replies.AUTH_LOCKED)
            return
        decoded = await (self._plain if mechanism == "PLAIN" else self._login)(initial.strip())
        if isinstance(decoded, SmtpReply):
            metrics.AUTH_RESULTS.labels(mechanism, "malformed").inc()
            await self.say(decoded)
            return
        await self._check(mechanism, *decoded)

    def _auth_refusal(self, arg: str) -> SmtpReply | None:
        parts = arg.split(" ")
        if self.conn.helo is None or not self.conn.esmtp:
            return replies.NEED_EHLO
        if not self.conn.tls:
            metrics.AUTH_RESULTS.labels("other", "no_tls").inc()
            return replies.AUTH_NEEDS_TLS
        if self.conn.auth_user is not None:
            return replies.AUTH_ALREADY
        if self.txn is not None:
            return replies.AUTH_IN_TRANSACTION
        if not arg or len(parts) > 2:
            return replies.AUTH_SYNTAX
        if parts[0].upper() not in MECHANISMS:
            metrics.AUTH_RESULTS.labels("other", "unknown_mechanism").inc()
            return replies.AUTH_UNKNOWN_MECHANISM
        return None

    async def _check(self, mechanism: str, name: str, password: str) -> None:
        outcome = await self.shared.authenticator.authenticate(self.conn, name, password)
        if outcome is True:
            self.conn.auth_user = name
            metrics.AUTH_RESULTS.labels(mechanism, "success").inc()
            log.info("authenticated", extra={**self.conn.log_fields(), "user": name})
            await self.say(replies.AUTH_OK)
            return
        metrics.AUTH_RESULTS.labels(mechanism, "locked" if outcome is None else "failure").inc()
        self.conn.auth_failures += 1
        if outcome is False:
            log.info("AUTH failed", extra={**self.conn.log_fields(), "user": name})
            await asyncio.sleep(self.shared.authenticator.failure_delay)
        if self.conn.auth_failures >= SESSION_FAILURES:
            self.abort(replies.AUTH_TOO_MANY, "too many AUTH failures")
            return
        await self.say(replies.AUTH_INVALID if outcome is False else replies.AUTH_LOCKED)

    async def _plain(self, initial: str) -> Credentials | SmtpReply:
        blob = await self._response(initial, "")
        if isinstance(blob, SmtpReply):
            return blob
        parts = blob.split(b"\x00")
        if len(parts) != 3 or not parts[1] or parts[0] not in (b"", parts[1]):
            return replies.AUTH_BAD_RESPONSE
        return _texts(parts[1], parts[2])

    async def _login(self, initial: str) -> Credentials | SmtpReply:
        name = await self._response(initial, "Username:")
        if isinstance(name, SmtpReply):
            return name
        password = await self._response("", "Password:")
        if isinstance(password, SmtpReply):
            return password
        return _texts(name, password)

    async def _response(self, initial: str, prompt: str) -> bytes | SmtpReply:
        """The initial response if given, else the answer to a ``334`` challenge."""
        if initial:
            text = initial.encode()
        else:
            await self.push("334 " + b64encode(prompt.encode()).decode())
            text = (await self.read_line()).strip()
        if text == b"*":
            return replies.AUTH_CANCELLED
        if text == b"=":
            return b""
        try:
            return b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return replies.AUTH_BAD_BASE64


def _texts(name: bytes, password: bytes) -> Credentials | SmtpReply:
    try:
        return name.decode("utf-8"), password.decode("utf-8")
    except UnicodeDecodeError:
        return replies.AUTH_BAD_RESPONSE
