"""Opening outbound sessions: connect, greet, EHLO, STARTTLS, AUTH.

``open_session(target, config)`` connects (``connect_timeout``; from the
target's source address, if one was chosen), reads the greeting
(``greeting_timeout``), says EHLO (HELO if EHLO is not understood; the
source's EHLO name if it has one), negotiates STARTTLS as the target says
(``starttls``) and authenticates at a smarthost (only over TLS). Every reply
is judged by ``trouble.expect`` for its phase: 220 greeting, 250 EHLO/HELO,
220 STARTTLS, 235 AUTH; a 4xx/5xx is the remote's refusal, anything else (or
a malformed reply, or input out of step) a protocol error. Anything that
makes the host unusable raises ``HostFailure`` with the reply standing for
it, the phase, and whether the reply is the remote's own (``remote``), so the
caller can try the next host. ``tls_policy``:

* ``none``: never STARTTLS;
* ``opportunistic``: STARTTLS when offered, certificate not checked; a failed
  handshake (or a wrong reply to STARTTLS) is retried once on a new plaintext
  session (as Postfix does);
* ``required``: STARTTLS or give up on this host, certificate not checked
  (with DANE TLSA records: the certificate must match them);
* ``verify``: STARTTLS with a certificate valid for the MX name (system CAs
  or ``tls_ca_file``), or give up on this host (MTA-STS ``testing``: record
  it and go on under the domain's own policy).

Every command and reply goes to the connection's transcript: never
credentials. ``Target``, ``Timeouts``, ``Connection`` and ``HostFailure`` live
in ``connection``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from functools import partial

import aiosmtplib

from postline.delivery import metrics, replies, starttls
from postline.delivery.connection import Connection, HostFailure, Target, Timeouts
from postline.delivery.settings import TlsPolicy
from postline.delivery.smtpclient import ProtocolViolation, StrictSMTP
from postline.delivery.tlsrpt import TlsReports
from postline.delivery.trouble import Phase, UnexpectedReply, expect, reply_for, reply_words

__all__ = ["Connection", "HostFailure", "SessionConfig", "Target", "Timeouts", "open_session"]

_HELO_FALLBACK = (500, 502)  # EHLO not understood: say HELO


@dataclass(frozen=True)
class SessionConfig:
    helo_name: str
    connect_timeout: float
    unverified_tls: ssl.SSLContext
    verified_tls: ssl.SSLContext
    timeouts: Timeouts = field(default_factory=Timeouts)
    reports: TlsReports | None = None

    def helo_for(self, target: Target) -> str:
        """The EHLO name: the source address's own, else ``helo_name``."""
        if target.source is not None and target.source.helo_name:
            return target.source.helo_name
        return self.helo_name


def tls_contexts(ca_file: str | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(unverified, verified) client contexts; blocking: call in a thread."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    verified = ssl.create_default_context(cafile=ca_file)
    return unverified, verified


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
            outcome = await starttls.negotiate(
                connection, config, partial(_hello, connection, config)
            )
            if outcome == "again":
                assert target.fallback is not None
                return await _again(connection, config, target.fallback)
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


async def _again(connection: Connection, config: SessionConfig, policy: TlsPolicy) -> Connection:
    """TLS failed: the same host again on a new session under ``policy``.

    The new session keeps ``connection``'s target (its pool key and its TLS
    report entry, already written) and its transcript lines.
    """
    target = connection.target
    connection.abort()
    # no TLS report for the retry: the failure that caused it is the session's report
    retry = replace(target, tls_policy=policy, tls_fallback=None, tlsa=(), sts=None, domain="")
    retry = replace(retry, note="")
    if policy == "opportunistic":
        retry = replace(retry, tls_fallback="none")
    fallback = await open_session(retry, config)
    fallback.lines[:0] = connection.take_lines()
    fallback.target = target
    fallback.reported = True
    return fallback


async def _connect(
    target: Target, config: SessionConfig
) -> tuple[Connection, aiosmtplib.SMTPResponse]:
    """A connected session and its greeting (not judged yet), or ``HostFailure``."""
    timeouts = config.timeouts
    smtp = StrictSMTP(
        target.address,
        target.port,
        local_hostname=config.helo_for(target),
        timeout=timeouts.command,
        greeting_timeout=timeouts.greeting,
        source_address=target.source.address if target.source else None,
    )
    connection = Connection(target, smtp, timeouts)
    source = f" from {target.source.address}" if target.source else ""
    connection.note(f"connect to {target.label}{source}")
    if target.note:
        connection.note(target.note)
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
    connection.note(f"> EHLO {config.helo_for(connection.target)}")
    try:
        response = await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as error:
        response = aiosmtplib.SMTPResponse(error.code, error.message)
        if error.code in _HELO_FALLBACK and smtp.is_connected:
            connection.replied(error.code, error.message)
            response = await _helo(connection, config)
    _accepted(connection, Phase.EHLO, response, 250)


async def _helo(connection: Connection, config: SessionConfig) -> aiosmtplib.SMTPResponse:
    connection.note(f"> HELO {config.helo_for(connection.target)}")
    try:
        return await connection.smtp.helo()
    except aiosmtplib.SMTPHeloError as error:
        return aiosmtplib.SMTPResponse(error.code, error.message)


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
