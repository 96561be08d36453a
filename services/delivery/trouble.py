"""Errors are data: every failure becomes an ``SmtpReply``, and one function decides its fate.

Postfix's ``smtp_trouble.c`` in Python. Two jobs, in this one module only:

* ``reply_for(error, phase, where)`` maps whatever went wrong (an aiosmtplib
  exception carrying the remote's reply, a dnspython exception, a socket
  error, a timeout, a TLS error) to the ``SmtpReply`` that events and the
  failure trail show. A remote reply is kept word for word; anything else
  gets one of ``replies``' constants with the detail appended. Exceptions this
  module does not know (bugs) are re-raised, so the bus requeues and
  eventually parks the message instead of inventing an outcome.
* ``verdict(reply, phase)`` decides delivered / deferred / bounced: 2xx
  delivered, 4xx deferred, 5xx bounced, except ``552`` at RCPT, which RFC 5321
  (section 4.5.3.1.10) says to treat as temporary.

``Phase`` names where in the dialogue a reply was given.
"""

from __future__ import annotations

import ssl
from enum import StrEnum

import aiosmtplib
import dns.exception
import dns.resolver

from postline.delivery import replies
from postline.reply import SmtpReply


class Phase(StrEnum):
    """Where a reply was decided (RFC 5321 vocabulary)."""

    ROUTE = "route"
    DNS = "dns"
    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    QUEUE = "queue"


class Verdict(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


def verdict(reply: SmtpReply, phase: Phase) -> Verdict:
    """The one place that decides retry versus bounce."""
    if reply.is_success:
        return Verdict.DELIVERED
    if reply.is_transient:
        return Verdict.DEFERRED
    if phase is Phase.RCPT and reply.code == 552:
        return Verdict.DEFERRED  # RFC 5321 4.5.3.1.10: 552 at RCPT means "too many, try later"
    return Verdict.BOUNCED


def remote_reply(code: int, message: str) -> SmtpReply:
    """A reply from the wire; a garbled code becomes a temporary protocol error."""
    if 200 <= code <= 599:
        return SmtpReply.parse(code, message)
    return replies.detailed(replies.SMTP_ERROR, f"invalid reply {message[:200]!r}")


def reply_for(error: BaseException, phase: Phase, where: str = "") -> SmtpReply:
    """The reply standing for ``error`` at ``phase`` with ``where`` (e.g. an MX host)."""
    at = f" ({where})" if where else ""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return remote_reply(error.code, error.message)
    if isinstance(error, dns.exception.DNSException):
        return dns_reply(error, where)
    if isinstance(error, aiosmtplib.SMTPConnectTimeoutError):
        return replies.detailed(replies.CONNECT_TIMEOUT, f"{error}{at}")
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return replies.detailed(replies.READ_TIMEOUT, f"while in {phase}{at}")
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        if phase is Phase.DATA:
            return replies.detailed(replies.LOST_CONNECTION, f"during or after end of data{at}")
        return replies.detailed(replies.LOST_CONNECTION, f"while in {phase}{at}")
    if isinstance(error, aiosmtplib.SMTPConnectError):
        return replies.detailed(replies.CONNECT_FAILED, f"{_cause(error)}{at}")
    if isinstance(error, ssl.SSLError):
        return replies.detailed(
            replies.TLS_FAILED, f"{getattr(error, 'reason', None) or error}{at}"
        )
    if isinstance(error, aiosmtplib.SMTPException):
        return replies.detailed(replies.SMTP_ERROR, f"{error}{at}")
    if isinstance(error, ConnectionError | OSError):
        return replies.detailed(replies.CONNECT_FAILED, f"{error}{at}")
    raise error


def dns_reply(error: dns.exception.DNSException, name: str) -> SmtpReply:
    """NXDOMAIN is permanent (5.1.2); SERVFAIL, timeouts and the rest temporary (4.4.3)."""
    if isinstance(error, dns.resolver.NXDOMAIN):
        return replies.detailed(replies.DOMAIN_NOT_FOUND, name)
    if isinstance(error, dns.resolver.NoNameservers):
        return replies.detailed(replies.DNS_TEMPORARY, f"SERVFAIL looking up {name}")
    if isinstance(error, dns.exception.Timeout):
        return replies.detailed(replies.DNS_TEMPORARY, f"timeout looking up {name}")
    return replies.detailed(replies.DNS_TEMPORARY, f"{type(error).__name__} looking up {name}")


def _cause(error: BaseException) -> str:
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error)
