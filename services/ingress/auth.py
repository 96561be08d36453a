"""AUTH PLAIN and LOGIN (RFC 4954, 4616), only over TLS, with brute-force limits.

Reply matrix: success ``235 2.7.0``; wrong password or unknown user
``535 5.7.8`` (after ``auth_failure_delay``, the same for both); no TLS
``538 5.7.11``; before EHLO, twice, or inside a transaction ``503 5.5.1``;
unknown mechanism ``504 5.5.4``; a response that is not ASCII base64
``501 5.5.2`` (counted as an AUTH failure of the session); a malformed PLAIN
message ``501 5.5.2``; ``*`` cancels with ``501 5.7.0``; over a budget
``454 4.7.0``. Three AUTH failures in one session (``535``, ``454`` or an
undecodable response) end it with ``421 4.7.0``. Each failure, and AUTH
refused without TLS, is a ``refused`` event (reasons ``auth_failed``,
``auth_locked``, ``auth_malformed``, ``auth_needs_tls``), coalesced per client
by ``refusals``, so a brute-force flood is a few events, not one per guess.

Budgets (``Authenticator``): a password check is reserved *before* it runs, in
two budgets of ``auth_max_failures`` per ``auth_failure_window``: the client key
(``conn.limit_key``: the IPv4 address or IPv6 /64) and the pair (user name,
client network: IPv4 /24, IPv6 /48). When reservations plus failures of either
reach the limit, AUTH is refused with ``454 4.7.0`` and nothing is checked; a
success releases its reservation (and clears the pair's failures, not the
address's), a failure (or a check cut short by a hang-up) becomes a failure,
and the failure that reaches the limit locks that budget for ``auth_lockout``.
So however many sessions guess at once, at most ``auth_max_failures`` wrong
passwords are checked per client key and per (user, network) per window.

No account is ever locked from everywhere: instead each user name's failures
from all networks within the window make every later check for that name wait
first, ``auth_failure_delay`` doubled per failure beyond the first, capped at
``auth_failure_delay_max``. User names are kept as digests, and every table is
bounded (``limits``). Time comes from ``clock`` and waits go through ``sleep``,
both injectable.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import ipaddress
import logging
import time
from base64 import b64decode, b64encode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from postline.ingress import metrics, replies
from postline.ingress.limits import Clock, FailureTracker, RecentFailures
from postline.ingress.state import Connection, Shared, Transaction
from postline.ingress.users import User, UserStore
from postline.netaddr import IPAddress
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.ingress.settings import IngressSettings

log = logging.getLogger("postline.ingress.auth")
SESSION_FAILURES = 3
MECHANISMS = ("PLAIN", "LOGIN")
Credentials = tuple[str, str]
Sleep = Callable[[float], Awaitable[None]]


class Checker(Protocol):
    """What ``Authenticator`` needs of ``users.PasswordChecker``."""

    async def verify(self, user: User | None, password: str) -> bool: ...


class Verdict(StrEnum):
    """Outcome of one AUTH (the values are ``postline_ingress_auth_total`` results)."""

    SUCCESS = "success"
    FAILURE = "failure"
    LOCKED = "locked"


@dataclass(frozen=True)
class _Budgets:
    """The keys one attempt counts against."""

    client: str  # conn.limit_key
    pair: str  # client network + user digest
    user: str  # user digest


def client_network(address: IPAddress | None) -> str:
    """The network of the (user, network) budget: the IPv4 /24 or the IPv6 /48."""
    if address is None:
        return "unknown"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def growing_delay(base: float, cap: float, failures: int) -> float:
    """No wait without failures; then ``base`` doubled per failure beyond the first, capped."""
    if failures <= 0 or base <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, 64))


class Authenticator:
    """Checks credentials against the users file within the budgets above."""

    def __init__(
        self,
        settings: IngressSettings,
        users: UserStore,
        checker: Checker,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.users = users
        self.checker = checker
        self.failure_delay = settings.auth_failure_delay
        self.delay_cap = settings.auth_failure_delay_max
        self._sleep = sleep
        limit, window = settings.auth_max_failures, settings.auth_failure_window
        self._by_client = FailureTracker(limit, window, settings.auth_lockout, clock)
        self._by_pair = FailureTracker(limit, window, settings.auth_lockout, clock)
        self._by_user = RecentFailures(window, clock=clock)

    def client_locked(self, conn: Connection) -> bool:
        """True if the client key's budget is used up (locked, or checks in progress)."""
        return self._by_client.full(conn.limit_key)

    def wait_before_check(self, name: str) -> float:
        """Seconds a check for ``name`` waits now, from its recent failures."""
        failures = self._by_user.count(_digest(name))
        return growing_delay(self.failure_delay, self.delay_cap, failures)

    async def authenticate(self, conn: Connection, name: str, password: str) -> Verdict:
        """Reserve, wait, check, record; LOCKED means nothing was checked."""
        user_key = _digest(name)
        budgets = _Budgets(conn.limit_key, f"{client_network(conn.client_ip)} {user_key}", user_key)
        if not self._reserve(budgets):
            return Verdict.LOCKED
        try:
            wait = self.wait_before_check(name)
            if wait > 0:
                await self._sleep(wait)
            user = await self.users.get(name)
        except BaseException:  # cancelled before any check: it does not count
            self._release(budgets, succeeded=False)
            raise
        try:
            valid = await self.checker.verify(user, password)
        except BaseException:  # a check cut short counts as a failure
            self._failed(conn, budgets, name)
            raise
        if valid:
            self._release(budgets, succeeded=True)
            return Verdict.SUCCESS
        self._failed(conn, budgets, name)
        await self._sleep(self.failure_delay)
        return Verdict.FAILURE

    def _reserve(self, budgets: _Budgets) -> bool:
        if self._by_client.full(budgets.client) or self._by_pair.full(budgets.pair):
            return False
        self._by_client.reserve(budgets.client)  # neither is full: both reservations hold
        self._by_pair.reserve(budgets.pair)
        return True

    def _release(self, budgets: _Budgets, *, succeeded: bool) -> None:
        self._by_client.release(budgets.client)
        self._by_pair.release(budgets.pair)
        if succeeded:
            self._by_pair.succeeded(budgets.pair)

    def _failed(self, conn: Connection, budgets: _Budgets, name: str) -> None:
        self._by_user.add(budgets.user)
        if self._by_client.failed(budgets.client):
            metrics.AUTH_LOCKOUTS.labels("ip").inc()
            log.warning("AUTH lockout for a client address", extra=conn.log_fields())
        if self._by_pair.failed(budgets.pair):
            metrics.AUTH_LOCKOUTS.labels("user").inc()
            fields = {**conn.log_fields(), "user": name, "network": budgets.pair.split()[0]}
            log.warning("AUTH lockout for a user from one client network", extra=fields)


def _digest(name: str) -> str:
    """A fixed-size stand-in for a user name in the tables."""
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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
            if refusal is replies.AUTH_NEEDS_TLS:
                self.shared.handler.refused(self.conn, "AUTH", "auth_needs_tls", refusal)
            await self.say(refusal)
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if self.shared.authenticator.client_locked(self.conn):
            metrics.AUTH_RESULTS.labels(mechanism, Verdict.LOCKED.value).inc()
            await self._auth_failed(replies.AUTH_LOCKED, "auth_locked")
            return
        decoded = await (self._plain if mechanism == "PLAIN" else self._login)(initial.strip())
        if isinstance(decoded, SmtpReply):
            metrics.AUTH_RESULTS.labels(mechanism, "malformed").inc()
            if decoded in (replies.AUTH_BAD_BASE64, replies.AUTH_UNDECODABLE):
                await self._auth_failed(decoded, "auth_malformed")  # a failure, not a typo
            else:
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
        verdict = await self.shared.authenticator.authenticate(self.conn, name, password)
        metrics.AUTH_RESULTS.labels(mechanism, verdict.value).inc()
        if verdict is Verdict.SUCCESS:
            self.conn.auth_user = name
            log.info("authenticated", extra={**self.conn.log_fields(), "user": name})
            await self.say(replies.AUTH_OK)
            return
        if verdict is Verdict.FAILURE:
            log.info("AUTH failed", extra={**self.conn.log_fields(), "user": name})
        if verdict is Verdict.FAILURE:
            await self._auth_failed(replies.AUTH_INVALID, "auth_failed", name)
        else:
            await self._auth_failed(replies.AUTH_LOCKED, "auth_locked", name)

    async def _auth_failed(self, reply: SmtpReply, reason: str, name: str | None = None) -> None:
        """One more AUTH failure in this session: ``reply``, or ``421`` at the third.

        Each is a ``refused`` event (``reason``, the reply the client got and the
        user name it tried, when it got that far).
        """
        self.conn.auth_failures += 1
        last = self.conn.auth_failures >= SESSION_FAILURES
        sent = replies.AUTH_TOO_MANY if last else reply
        self.shared.handler.refused(self.conn, "AUTH", reason, sent, user=name)
        if last:
            self.abort(replies.AUTH_TOO_MANY, "too many AUTH failures")
            return
        await self.say(reply)

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
            if not initial.isascii():  # raw bytes, kept by the session as surrogates
                return replies.AUTH_UNDECODABLE
            text = initial.encode("ascii")
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
