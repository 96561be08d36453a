"""Outbound SMTP sessions with aiosmtplib: connect, greet, STARTTLS, AUTH.

``open_session(target, config)`` connects, reads the greeting, says EHLO (HELO
if EHLO is not understood), negotiates STARTTLS as the target's ``tls_policy``
says and authenticates at a smarthost (only over TLS). Anything that makes
the host unusable raises ``HostFailure`` with the reply standing for it, so
the caller can try the next host. ``tls_policy``:

* ``none``: never STARTTLS;
* ``opportunistic``: STARTTLS when offered, certificate not checked; a failed
  handshake is retried once on a new plaintext session (as Postfix does);
* ``required``: STARTTLS or give up on this host, certificate not checked;
* ``verify``: STARTTLS with a certificate valid for the MX name (system CAs
  or ``tls_ca_file``), or give up on this host.

A ``Connection`` (one session) keeps its transcript: every command and reply.
Every command and reply is appended to the connection's transcript: never the
message body (only its size), never credentials.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import uuid
from dataclasses import dataclass, field

import aiosmtplib

from postline.delivery import metrics, replies
from postline.delivery.settings import TlsPolicy
from postline.delivery.trouble import Phase, remote_reply, reply_for
from postline.reply import SmtpReply


@dataclass(frozen=True)
class Target:
    """One host to connect to, and how."""

    mx: str
    address: str
    port: int
    tls_policy: TlsPolicy = "opportunistic"
    credentials: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        """Postfix style: ``mx.example.org[192.0.2.1]:25``."""
        return f"{self.mx}[{self.address}]:{self.port}"

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        user = self.credentials[0] if self.credentials else ""
        return (self.mx, self.address, self.port, self.tls_policy, user)


@dataclass(frozen=True)
class SessionConfig:
    helo_name: str
    connect_timeout: float
    command_timeout: float
    unverified_tls: ssl.SSLContext
    verified_tls: ssl.SSLContext


def tls_contexts(ca_file: str | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(unverified, verified) client contexts; blocking: call in a thread."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    verified = ssl.create_default_context(cafile=ca_file)
    return unverified, verified


class HostFailure(Exception):
    """This host cannot take mail now; ``reply`` says why."""

    def __init__(self, reply: SmtpReply, phase: Phase, connection: Connection) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.phase = phase
        self.connection = connection


@dataclass
class Connection:
    """One SMTP session to ``target`` and the transcript lines not yet handed out."""

    target: Target
    smtp: aiosmtplib.SMTP
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    lines: list[str] = field(default_factory=list)
    transactions: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    tls: str = "plaintext"
    counted: bool = False

    def note(self, line: str) -> None:
        self.lines.append(line)

    def replied(self, code: int, message: str) -> None:
        for line in message.splitlines() or [""]:
            self.lines.append(f"< {code} {line}".rstrip())

    def take_lines(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines

    @property
    def alive(self) -> bool:
        return self.smtp.is_connected

    def abort(self) -> None:
        self.smtp.close()
        self._uncount()

    async def quit(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(Exception):
            if self.smtp.is_connected:
                await self.smtp.quit(timeout=timeout)
        self.smtp.close()
        self._uncount()

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            metrics.CONNECTIONS_OPEN.dec()


async def open_session(target: Target, config: SessionConfig) -> Connection:
    """A ready session (greeted, EHLO done, TLS as required, authenticated) or HostFailure."""
    connection = await _connect(target, config)
    try:
        await _hello(connection, config)
        if target.tls_policy != "none":
            retry_plain = await _starttls(connection, config)
            if retry_plain:
                connection.abort()
                plain = Target(target.mx, target.address, target.port, "none", target.credentials)
                fallback = await open_session(plain, config)
                fallback.lines[:0] = connection.take_lines()
                fallback.target = target
                return fallback
        metrics.TLS_SESSIONS.labels(connection.tls).inc()
        if target.credentials is not None:
            await _authenticate(connection, target.credentials)
    except HostFailure:
        connection.abort()
        raise
    except Exception as error:
        connection.abort()
        reply = reply_for(error, Phase.EHLO, target.label)
        raise HostFailure(reply, Phase.EHLO, connection) from None
    except BaseException:  # cancelled by the attempt's wall-clock cap
        connection.abort()
        raise
    return connection


async def _connect(target: Target, config: SessionConfig) -> Connection:
    smtp = aiosmtplib.SMTP(
        hostname=target.address,
        port=target.port,
        local_hostname=config.helo_name,
        timeout=config.command_timeout,
        start_tls=False,
    )
    connection = Connection(target, smtp)
    connection.note(f"connect to {target.label}")
    try:
        greeting = await smtp.connect(timeout=config.connect_timeout)
    except aiosmtplib.SMTPConnectResponseError as error:
        connection.replied(error.code, error.message)
        phase = Phase.GREETING
        raise HostFailure(reply_for(error, phase, target.label), phase, connection) from None
    except Exception as error:
        reply = reply_for(error, Phase.CONNECT, target.label)
        connection.note(f"failed: {reply}")
        raise HostFailure(reply, Phase.CONNECT, connection) from None
    metrics.CONNECTIONS_OPEN.inc()
    connection.counted = True
    connection.replied(greeting.code, greeting.message)
    return connection


async def _hello(connection: Connection, config: SessionConfig) -> None:
    smtp = connection.smtp
    connection.note(f"> EHLO {config.helo_name}")
    try:
        response = await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as error:
        connection.replied(error.code, error.message)
        if error.code not in (500, 502) or not smtp.is_connected:
            reply = remote_reply(error.code, error.message)
            raise HostFailure(reply, Phase.EHLO, connection) from None
        connection.note(f"> HELO {config.helo_name}")
        try:
            response = await smtp.helo()
        except aiosmtplib.SMTPHeloError as helo_error:
            connection.replied(helo_error.code, helo_error.message)
            reply = remote_reply(helo_error.code, helo_error.message)
            raise HostFailure(reply, Phase.EHLO, connection) from None
    connection.replied(response.code, response.message)


async def _starttls(connection: Connection, config: SessionConfig) -> bool:
    """STARTTLS per policy; True when an opportunistic session should retry in plaintext."""
    target, smtp = connection.target, connection.smtp
    policy = target.tls_policy
    if not smtp.supports_extension("starttls"):
        if policy in ("required", "verify"):
            connection.note("STARTTLS not offered")
            metrics.TLS_SESSIONS.labels("failed").inc()
            raise HostFailure(
                replies.detailed(replies.TLS_UNAVAILABLE, target.label), Phase.STARTTLS, connection
            )
        return False
    verify = policy == "verify"
    connection.note("> STARTTLS")
    try:
        response = await smtp.starttls(
            server_hostname=target.mx,
            tls_context=config.verified_tls if verify else config.unverified_tls,
            timeout=config.command_timeout,
        )
        connection.replied(response.code, response.message)
        await _hello(connection, config)
    except HostFailure:
        raise
    except Exception as error:
        reply = reply_for(error, Phase.STARTTLS, target.label)
        connection.note(f"TLS failed: {reply}")
        metrics.TLS_SESSIONS.labels("failed").inc()
        if policy == "opportunistic":
            connection.note("retrying without TLS (opportunistic)")
            return True
        raise HostFailure(reply, Phase.STARTTLS, connection) from None
    connection.tls = "verified" if verify else "unverified"
    cipher = smtp.get_transport_info("cipher")
    name = f"{cipher[1]} {cipher[0]}" if cipher else "?"
    connection.note(f"TLS established: {name}, certificate {connection.tls}")
    return False


async def _authenticate(connection: Connection, credentials: tuple[str, str]) -> None:
    target, smtp = connection.target, connection.smtp
    if connection.tls == "plaintext":
        connection.note("AUTH refused: connection is not encrypted")
        reply = replies.detailed(replies.AUTH_WITHOUT_TLS, target.label)
        raise HostFailure(reply, Phase.AUTH, connection)
    connection.note("> AUTH (credentials not logged)")
    try:
        response = await smtp.login(*credentials)
    except aiosmtplib.SMTPResponseException as error:
        connection.replied(error.code, error.message)
        detail = f"{target.label} said {remote_reply(error.code, error.message)}"
        raise HostFailure(
            replies.detailed(replies.AUTH_FAILED, detail), Phase.AUTH, connection
        ) from None
    connection.replied(response.code, response.message)
