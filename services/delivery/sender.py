"""Opening outbound sessions: connect, greet, EHLO, STARTTLS, AUTH.

``open_session(target, config)`` connects (``connect_timeout``), reads the
greeting (``greeting_timeout``), says EHLO (HELO if EHLO is not understood),
negotiates STARTTLS as the target's ``tls_policy`` says and authenticates at
a smarthost (only over TLS). Every reply is judged by ``trouble.expect`` for its
phase: 220 greeting, 250 EHLO/HELO, 220 STARTTLS, 235 AUTH; a 4xx/5xx is the
remote's refusal, anything else (or a malformed reply, or input out of step) a
protocol error. Anything that makes the host unusable raises ``HostFailure``
with the reply standing for it, the phase, and whether the reply is the
remote's own (``remote``), so the caller can try the next host. ``tls_policy``:

* ``none``: never STARTTLS;
* ``opportunistic``: STARTTLS when offered, certificate not checked; a failed
  handshake (or a wrong reply to STARTTLS) is retried once on a new plaintext
  session (as Postfix does);
* ``required``: STARTTLS or give up on this host, certificate not checked;
* ``verify``: STARTTLS with a certificate valid for the MX name (system CAs
  or ``tls_ca_file``), or give up on this host.

Every command and reply goes to the connection's transcript: never
credentials. ``Target``, ``Timeouts`` and ``Connection`` live in ``connection``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import aiosmtplib

from postline.delivery import metrics, replies
from postline.delivery.connection import Connection, Target, Timeouts
from postline.delivery.smtpclient import ProtocolViolation, StrictSMTP
from postline.delivery.trouble import Phase, UnexpectedReply, expect, reply_for, reply_words
from postline.reply import ReplyError, SmtpReply

__all__ = ["Connection", "HostFailure", "SessionConfig", "Target", "Timeouts", "open_session"]

_HELO_FALLBACK = (500, 502)  # EHLO not understood: say HELO


@dataclass(frozen=True)
class SessionConfig:
    helo_name: str
    connect_timeout: float
    unverified_tls: ssl.SSLContext
    verified_tls: ssl.SSLContext
    timeouts: Timeouts = field(default_factory=Timeouts)


def tls_contexts(ca_file: str | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(unverified, verified) client contexts; blocking: call in a thread."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    verified = ssl.create_default_context(cafile=ca_file)
    return unverified, verified


class HostFailure(ReplyError):
    """This host cannot take mail now; ``reply`` says why (``remote``: in its own words)."""

    def __init__(
        self, reply: SmtpReply, phase: Phase, connection: Connection, remote: bool = False
    ) -> None:
        super().__init__(reply)
        self.phase = phase
        self.connection = connection
        self.remote = remote


async def open_session(target: Target, config: SessionConfig) -> Connection:
    """A ready session (greeted, EHLO done, TLS as required, authenticated) or HostFailure."""
    connection, greeting = await _connect(target, config)
    phase = Phase.GREETING
    try:
        _accepted(connection, phase, greeting, 220)
        phase = Phase.EHLO
        await _hello(connection, config)
        if target.tls_policy != "none":
            phase = Phase.STARTTLS
            if await _starttls(connection, config):
                return await _plaintext_again(connection, config)
        metrics.TLS_SESSIONS.labels(connection.tls).inc()
        if target.credentials is not None:
            phase = Phase.AUTH
            await _authenticate(connection, target.credentials)
    except HostFailure:
        connection.abort()
        raise
    except Exception as error:
        connection.abort()
        raise _failure(connection, error, phase) from None
    except BaseException:  # cancelled by the attempt's wall-clock cap
        connection.abort()
        raise
    return connection


def _failure(connection: Connection, error: Exception, phase: Phase) -> HostFailure:
    """The ``HostFailure`` for ``error`` at ``phase`` (a bug in ``error`` is re-raised)."""
    if isinstance(error, ProtocolViolation):
        connection.noted(error)
    reply = reply_for(error, phase, connection.target.label)
    connection.note(f"failed: {reply}")
    return HostFailure(reply, phase, connection)


async def _plaintext_again(connection: Connection, config: SessionConfig) -> Connection:
    """Opportunistic TLS failed: the same host again on a new session, without STARTTLS."""
    target = connection.target
    connection.abort()
    plain = Target(target.mx, target.address, target.port, "none", target.credentials)
    fallback = await open_session(plain, config)
    fallback.lines[:0] = connection.take_lines()
    fallback.target = target
    return fallback


async def _connect(
    target: Target, config: SessionConfig
) -> tuple[Connection, aiosmtplib.SMTPResponse]:
    """A connected session and its greeting (not judged yet), or ``HostFailure``."""
    timeouts = config.timeouts
    smtp = StrictSMTP(
        target.address,
        target.port,
        local_hostname=config.helo_name,
        timeout=timeouts.command,
        greeting_timeout=timeouts.greeting,
    )
    connection = Connection(target, smtp, timeouts)
    connection.note(f"connect to {target.label}")
    try:
        greeting = await smtp.connect(timeout=config.connect_timeout)
    except Exception as error:
        phase = Phase.GREETING if smtp.reached else Phase.CONNECT
        raise _failure(connection, error, phase) from None
    metrics.CONNECTIONS_OPEN.inc()
    connection.counted = True
    return connection, greeting


def _accepted(
    connection: Connection, phase: Phase, response: aiosmtplib.SMTPResponse, wanted: int
) -> None:
    """Note the reply; unless it is ``wanted``: ``HostFailure`` (a refusal) or a violation."""
    connection.replied(response.code, response.message)
    reply = expect(phase, response.code, response.message)
    if reply.code != wanted:
        raise HostFailure(reply, phase, connection, remote=True)
    connection.smtp.check_in_step()


async def _hello(connection: Connection, config: SessionConfig) -> None:
    smtp = connection.smtp
    connection.note(f"> EHLO {config.helo_name}")
    try:
        response = await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as error:
        response = aiosmtplib.SMTPResponse(error.code, error.message)
        if error.code in _HELO_FALLBACK and smtp.is_connected:
            connection.replied(error.code, error.message)
            response = await _helo(connection, config)
    _accepted(connection, Phase.EHLO, response, 250)


async def _helo(connection: Connection, config: SessionConfig) -> aiosmtplib.SMTPResponse:
    connection.note(f"> HELO {config.helo_name}")
    try:
        return await connection.smtp.helo()
    except aiosmtplib.SMTPHeloError as error:
        return aiosmtplib.SMTPResponse(error.code, error.message)


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
            timeout=config.timeouts.command,
        )
        connection.replied(response.code, response.message)
        smtp.check_in_step()  # plaintext after the 220 is an injection (RFC 3207 4.2)
        await _hello(connection, config)
    except HostFailure:
        raise
    except Exception as error:
        return _tls_failed(connection, error)
    connection.tls = "verified" if verify else "unverified"
    cipher = smtp.get_transport_info("cipher")
    if cipher:
        connection.tls_cipher, connection.tls_version = str(cipher[0]), str(cipher[1])
    name = f"{cipher[1]} {cipher[0]}" if cipher else "?"
    connection.note(f"TLS established: {name}, certificate {connection.tls}")
    return False


def _tls_failed(connection: Connection, error: Exception) -> bool:
    """True (retry in plaintext) under opportunistic TLS, else ``HostFailure``."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        connection.replied(error.code, error.message)
    elif isinstance(error, ProtocolViolation):
        connection.noted(error)
    reply = reply_for(error, Phase.STARTTLS, connection.target.label)
    connection.note(f"TLS failed: {reply}")
    metrics.TLS_SESSIONS.labels("failed").inc()
    if connection.target.tls_policy == "opportunistic":
        connection.note("retrying without TLS (opportunistic)")
        return True
    raise HostFailure(reply, Phase.STARTTLS, connection) from None


async def _authenticate(connection: Connection, credentials: tuple[str, str]) -> None:
    target, smtp = connection.target, connection.smtp
    if connection.tls == "plaintext":
        connection.note("AUTH refused: connection is not encrypted")
        reply = replies.detailed(replies.AUTH_WITHOUT_TLS, target.label)
        raise HostFailure(reply, Phase.AUTH, connection)
    connection.note("> AUTH (credentials not logged)")
    try:
        response = await smtp.login(*credentials, timeout=connection.timeouts.command)
    except aiosmtplib.SMTPResponseException as error:
        connection.replied(error.code, error.message)
        said = expect(Phase.AUTH, error.code, error.message)
        if said.code < 400:  # a 334 where aiosmtplib needed the final 235
            words = reply_words(error.code, error.message)
            raise UnexpectedReply("unexpected reply", words) from None
        detail = f"{target.label} said {said}"
        raise HostFailure(
            replies.detailed(replies.AUTH_FAILED, detail), Phase.AUTH, connection, remote=True
        ) from None
    _accepted(connection, Phase.AUTH, response, 235)
