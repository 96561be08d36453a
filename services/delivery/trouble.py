"""Errors are data: every failure becomes an ``SmtpReply``, and one function decides its fate.

Postfix's ``smtp_trouble.c`` in Python. Three jobs, in this one module only:

* ``expect(phase, code, message)`` judges a reply from the wire by where in the
  dialogue it came (``EXPECTED``: greeting 220; EHLO 250; STARTTLS 220; AUTH
  235/334; MAIL 250; RCPT 250/251; DATA 354; end of data 2xx). A reply the
  phase expects, or a 4xx/5xx refusal, is returned as the remote's reply, word
  for word. Anything else raises ``UnexpectedReply`` (a ``ProtocolViolation``):
  a 2xx/3xx that does not belong to the phase, a code outside 200-599, an
  enhanced code of another class than the reply (``550 2.0.0``).
  ``remote_reply`` is the same judgement as a value: the violation becomes
  ``451 4.5.0 SMTP protocol error: ...`` with the remote's words
  (``protocol_error``).
* ``reply_for(error, phase, where)`` maps whatever went wrong (a protocol
  violation, an aiosmtplib exception carrying the remote's reply, a dnspython
  exception, a socket error, a timeout, a TLS error) to the ``SmtpReply`` that
  events and the failure trail show. Exceptions this module does not know
  (bugs) are re-raised, so the bus requeues and eventually parks the message
  instead of inventing an outcome.
* ``verdict(reply, phase)`` decides delivered / deferred / bounced. Only a 2xx
  reply to the end of the message data delivers. 4xx defers; 5xx bounces,
  except ``552`` at RCPT, which RFC 5321 (section 4.5.3.1.10) says to treat as
  temporary. Anything else (a 2xx/3xx at any other phase, an inconsistent
  enhanced code) is a protocol error, and defers.

``Phase`` names where in the dialogue a reply was given; the end of data (the
reply after the final dot) is its own phase, apart from the DATA command.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

import aiosmtplib
import dns.exception
import dns.resolver

from postline.delivery import replies
from postline.delivery.smtpclient import ProtocolViolation
from postline.reply import SmtpReply


class Phase(StrEnum):
    """Where a reply was decided (RFC 5321 vocabulary)."""

    ROUTE = "route"
    DNS = "dns"
    POLICY = "tls policy"  # a transport security policy (MTA-STS, DANE) ruled a host out
    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    END_OF_DATA = "end of data"
    QUEUE = "queue"


class UnexpectedReply(ProtocolViolation):
    """A well-formed reply that its phase cannot have (already in the transcript)."""


class Verdict(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


EXPECTED: Mapping[Phase, frozenset[int]] = MappingProxyType(
    {
        Phase.GREETING: frozenset({220}),
        Phase.EHLO: frozenset({250}),
        Phase.STARTTLS: frozenset({220}),
        Phase.AUTH: frozenset({235, 334}),
        Phase.MAIL: frozenset({250}),
        Phase.RCPT: frozenset({250, 251}),
        Phase.DATA: frozenset({354}),
        Phase.END_OF_DATA: frozenset(range(200, 300)),
    }
)

_STEP = {
    Phase.GREETING: "greeting",
    Phase.EHLO: "EHLO",
    Phase.STARTTLS: "STARTTLS",
    Phase.AUTH: "AUTH",
    Phase.MAIL: "MAIL FROM",
    Phase.RCPT: "RCPT TO",
    Phase.DATA: "DATA",
}


def at(phase: Phase) -> str:
    """``at MAIL FROM``, ``after end of data``: where, for reply texts and trail reasons."""
    if phase is Phase.END_OF_DATA:
        return "after end of data"
    return f"at {_STEP.get(phase, str(phase))}"


def verdict(reply: SmtpReply, phase: Phase) -> Verdict:
    """The one place that decides delivered versus retry versus bounce."""
    if not reply.is_consistent or reply.is_transient:
        return Verdict.DEFERRED
    if reply.is_permanent:
        if phase is Phase.RCPT and reply.code == 552:
            return Verdict.DEFERRED  # RFC 5321 4.5.3.1.10: 552 at RCPT means "too many, try later"
        return Verdict.BOUNCED
    if phase is Phase.END_OF_DATA and reply.code in EXPECTED[phase]:
        return Verdict.DELIVERED
    return Verdict.DEFERRED  # a 2xx/3xx anywhere else: the remote never accepted the message


def expect(phase: Phase, code: int, message: str) -> SmtpReply:
    """The remote's reply at ``phase`` if it may give it there, else ``ProtocolViolation``."""
    words = reply_words(code, message)
    if not 200 <= code <= 599:
        raise UnexpectedReply("malformed reply", words)
    reply = SmtpReply.parse(code, message)
    if not reply.is_consistent:
        raise UnexpectedReply("enhanced code of another class", words)
    if code in EXPECTED.get(phase, ()) or code >= 400:
        return reply
    raise UnexpectedReply("unexpected reply", words)


def reply_words(code: int, message: str) -> str:
    """``250 first line / second line``: a reply as the remote gave it, escaped."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return replies.escaped(" / ".join([f"{code} {lines[0]}", *lines[1:]] if lines else [str(code)]))


def remote_reply(code: int, message: str, phase: Phase) -> SmtpReply:
    """``expect``'s judgement as a value: the remote's reply, or the protocol error."""
    try:
        return expect(phase, code, message)
    except ProtocolViolation as violation:
        return protocol_error(violation, phase)


def protocol_error(violation: ProtocolViolation, phase: Phase) -> SmtpReply:
    """``451 4.5.0 SMTP protocol error: <what> <where>: '<the remote's words>'``."""
    detail = f"{violation.what} {at(phase)}: '{violation.words}'"
    return replies.detailed(replies.PROTOCOL_ERROR, detail)


def reply_for(error: BaseException, phase: Phase, where: str = "") -> SmtpReply:
    """The reply standing for ``error`` at ``phase`` with ``where`` (e.g. an MX host)."""
    host = f" ({where})" if where else ""
    if isinstance(error, ProtocolViolation):
        return protocol_error(error, phase)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return remote_reply(error.code, error.message, phase)
    if isinstance(error, dns.exception.DNSException):
        return dns_reply(error, where)
    if isinstance(error, aiosmtplib.SMTPConnectTimeoutError):
        return replies.detailed(replies.CONNECT_TIMEOUT, f"{error}{host}")
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return replies.detailed(replies.READ_TIMEOUT, f"{at(phase)}{host}")
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        if phase is Phase.END_OF_DATA:
            return replies.detailed(replies.LOST_CONNECTION, f"during or after end of data{host}")
        return replies.detailed(replies.LOST_CONNECTION, f"{at(phase)}{host}")
    if isinstance(error, aiosmtplib.SMTPConnectError):
        return replies.detailed(replies.CONNECT_FAILED, f"{_cause(error)}{host}")
    if isinstance(error, ssl.SSLError):
        return replies.detailed(
            replies.TLS_FAILED, f"{getattr(error, 'reason', None) or error}{host}"
        )
    if isinstance(error, aiosmtplib.SMTPException):
        return replies.detailed(replies.SMTP_ERROR, f"{error}{host}")
    if isinstance(error, ConnectionError | OSError):
        return replies.detailed(replies.CONNECT_FAILED, f"{error}{host}")
    raise error


def dns_outcome(error: dns.exception.DNSException) -> str:
    """What a failed lookup was: ``nxdomain``, ``servfail``, ``timeout`` or ``error``.

    The one classification of DNS exceptions: the lookup metric's ``result``
    label and ``dns_reply`` both use it.
    """
    if isinstance(error, dns.resolver.NXDOMAIN):
        return "nxdomain"
    if isinstance(error, dns.resolver.NoNameservers):
        return "servfail"
    if isinstance(error, dns.exception.Timeout):
        return "timeout"
    return "error"


def dns_reply(error: dns.exception.DNSException, name: str) -> SmtpReply:
    """NXDOMAIN is permanent (5.1.2); SERVFAIL, timeouts and the rest temporary (4.4.3)."""
    outcome = dns_outcome(error)
    if outcome == "nxdomain":
        return replies.detailed(replies.DOMAIN_NOT_FOUND, name)
    what = {"servfail": "SERVFAIL", "timeout": "timeout"}.get(outcome, type(error).__name__)
    return replies.detailed(replies.DNS_TEMPORARY, f"{what} looking up {name}")


def _cause(error: BaseException) -> str:
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error)
