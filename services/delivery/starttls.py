"""STARTTLS on an outbound session, as the target's TLS policy says, and the TLS report of it.

``negotiate(connection, config, hello)`` runs STARTTLS on a greeted session
(``hello`` says EHLO again afterwards) and returns ``"done"`` (TLS is up, or
the policy let the session go on in plaintext) or ``"again"`` (the handshake
failed and the target's ``fallback`` policy is to be tried on a new session:
opportunistic TLS in plaintext, an MTA-STS ``testing`` host under the domain's
own policy). Anything else raises ``HostFailure``:

* STARTTLS not offered: fine for ``opportunistic``; for ``required``/``verify``
  a failure (``451 4.7.4``), unless an MTA-STS ``testing`` fallback lets the
  session go on as it is;
* ``verify``: the certificate must be valid for the MX name (``verified_tls``);
* DANE (``target.tlsa``): the handshake skips the CA check (RFC 7672 3.1) and
  the chain the server sent must then match a TLSA record (``dane.verify``),
  else ``451 4.7.5`` (no fallback: DANE is downgrade-resistant).

Each session opened under a policy (``sts`` or ``tlsa``; or under none, once
TLS is up) is recorded once in ``config.reports`` (``tlsrpt``): a success, or
the RFC 8460 result type of what failed (``starttls-not-supported``,
``certificate-expired``, ``certificate-host-mismatch``,
``certificate-not-trusted``, ``validation-failure``), and the transcript says
it (``TLS report: sts failure: ...``).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import aiosmtplib

from postline.delivery import dane, metrics, replies
from postline.delivery.connection import Connection, HostFailure
from postline.delivery.smtpclient import ProtocolViolation
from postline.delivery.trouble import Phase, reply_for

if TYPE_CHECKING:
    from postline.delivery.sender import SessionConfig

Outcome = Literal["done", "again"]
_VERIFY_RESULTS = {
    10: "certificate-expired",  # X509_V_ERR_CERT_HAS_EXPIRED
    62: "certificate-host-mismatch",  # X509_V_ERR_HOSTNAME_MISMATCH
    18: "certificate-not-trusted",  # self-signed leaf
    19: "certificate-not-trusted",  # self-signed certificate in the chain
    20: "certificate-not-trusted",  # issuer not found
    21: "certificate-not-trusted",  # leaf signature cannot be verified
}


async def negotiate(
    connection: Connection, config: SessionConfig, hello: Callable[[], Awaitable[None]]
) -> Outcome:
    """STARTTLS per ``connection.target`` (module docstring)."""
    target, smtp = connection.target, connection.smtp
    if not smtp.supports_extension("starttls"):
        if target.tls_policy == "opportunistic" and not target.tlsa:
            return "done"
        connection.note("STARTTLS not offered")
        report(connection, config, "starttls-not-supported", "STARTTLS not offered")
        if target.sts == "testing" and target.fallback in ("none", "opportunistic"):
            connection.note("MTA-STS testing: delivering without TLS")
            return "done"
        metrics.TLS_SESSIONS.labels("failed").inc()
        reply = replies.detailed(replies.TLS_UNAVAILABLE, target.label)
        raise HostFailure(reply, Phase.STARTTLS, connection)
    verify = target.tls_policy == "verify" and not target.tlsa
    connection.note("> STARTTLS")
    try:
        response = await smtp.starttls(
            server_hostname=target.mx,
            tls_context=config.verified_tls if verify else config.unverified_tls,
            timeout=config.timeouts.command,
        )
        connection.replied(response.code, response.message)
        smtp.check_in_step()  # plaintext after the 220 is an injection (RFC 3207 4.2)
    except Exception as error:
        return _failed(connection, config, error)
    how = _authenticate(connection, config) if target.tlsa else ""
    try:
        await hello()
    except HostFailure:
        raise
    except Exception as error:
        return _failed(connection, config, error)
    connection.tls = "verified" if verify or target.tlsa else "unverified"
    cipher = smtp.get_transport_info("cipher")
    if cipher:
        connection.tls_cipher, connection.tls_version = str(cipher[0]), str(cipher[1])
    name = f"{cipher[1]} {cipher[0]}" if cipher else "?"
    connection.note(f"TLS established: {name}, certificate {connection.tls}{how}")
    report(connection, config, None)
    return "done"


def _authenticate(connection: Connection, config: SessionConfig) -> str:
    """DANE: the chain must match a TLSA record; `` (DANE-EE ...)`` for the transcript."""
    target = connection.target
    chain = dane.peer_chain(connection.smtp.get_transport_info("ssl_object"))
    names = [target.mx, *([target.domain] if target.domain else [])]
    verdict = dane.verify(target.tlsa, chain, names, datetime.now(UTC))
    if verdict.ok:
        return f" ({verdict.how})"
    detail = f"{target.label}: {verdict.reason}"
    connection.note(f"TLS failed: DANE: {verdict.reason}")
    report(connection, config, verdict.result, verdict.reason)
    metrics.TLS_SESSIONS.labels("failed").inc()
    raise HostFailure(replies.detailed(replies.DANE_FAILED, detail), Phase.STARTTLS, connection)


def _failed(connection: Connection, config: SessionConfig, error: Exception) -> Outcome:
    """``"again"`` when the target has a fallback policy, else ``HostFailure``."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        connection.replied(error.code, error.message)
    elif isinstance(error, ProtocolViolation):
        connection.noted(error)
    target = connection.target
    reply = reply_for(error, Phase.STARTTLS, target.label)
    connection.note(f"TLS failed: {reply}")
    metrics.TLS_SESSIONS.labels("failed").inc()
    report(connection, config, result_of(error), str(reply))
    if target.fallback is not None:
        connection.note(f"retrying with tls_policy {target.fallback}")
        return "again"
    raise HostFailure(reply, Phase.STARTTLS, connection) from None


def result_of(error: BaseException) -> str:
    """The RFC 8460 result type of a failed handshake."""
    for candidate in (error, error.__cause__, error.__context__):
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return _VERIFY_RESULTS.get(candidate.verify_code, "validation-failure")
    return "validation-failure"


def report(
    connection: Connection, config: SessionConfig, result: str | None, detail: str = ""
) -> None:
    """Record this session's TLS outcome once (``result`` None: success)."""
    target = connection.target
    reports = config.reports
    if reports is None or connection.reported or not target.domain:
        return
    policy = target.policy_type
    if result is None:
        reports.success(target.domain, policy)
        if policy != "no-policy-found":
            connection.note(f"TLS report: {policy} success")
    elif policy != "no-policy-found":
        reports.failure(target.domain, policy, result, target.mx, detail)
        connection.note(f"TLS report: {policy} failure: {result}")
    else:
        return
    connection.reported = True
