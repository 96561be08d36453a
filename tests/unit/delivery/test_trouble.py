"""Every failure maps to a reply, and one function decides delivered / deferred / bounced."""

from __future__ import annotations

import ssl

import aiosmtplib
import dns.exception
import dns.resolver
import pytest

from postline.delivery.trouble import Phase, Verdict, reply_for, verdict
from postline.reply import SmtpReply


@pytest.mark.parametrize(
    ("code", "phase", "expected"),
    [
        (250, Phase.DATA, Verdict.DELIVERED),
        (251, Phase.RCPT, Verdict.DELIVERED),
        (421, Phase.RCPT, Verdict.DEFERRED),
        (451, Phase.MAIL, Verdict.DEFERRED),
        (452, Phase.RCPT, Verdict.DEFERRED),
        (550, Phase.RCPT, Verdict.BOUNCED),
        (552, Phase.RCPT, Verdict.DEFERRED),  # RFC 5321 4.5.3.1.10
        (552, Phase.DATA, Verdict.BOUNCED),
        (554, Phase.DATA, Verdict.BOUNCED),
        (556, Phase.DNS, Verdict.BOUNCED),
    ],
)
def test_verdict_by_reply_code_and_phase(code: int, phase: Phase, expected: Verdict) -> None:
    assert verdict(SmtpReply(code=code), phase) is expected


def test_remote_reply_is_kept_word_for_word() -> None:
    error = aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "x@y")
    assert reply_for(error, Phase.RCPT) == SmtpReply(
        code=550, enhanced="5.1.1", text="No such user"
    )


def test_garbled_remote_code_becomes_a_temporary_protocol_error() -> None:
    error = aiosmtplib.SMTPResponseException(-1, "Response too long")
    assert reply_for(error, Phase.RCPT).code == 451


@pytest.mark.parametrize(
    ("error", "enhanced"),
    [
        (dns.resolver.NXDOMAIN(), "5.1.2"),  # type: ignore[no-untyped-call]
        (dns.resolver.NoNameservers(), "4.4.3"),  # type: ignore[no-untyped-call]
        (dns.exception.Timeout(), "4.4.3"),  # type: ignore[no-untyped-call]
        (aiosmtplib.SMTPConnectError("refused"), "4.4.1"),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), "4.4.1"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "4.4.2"),
        (TimeoutError(), "4.4.2"),
        (aiosmtplib.SMTPServerDisconnected("gone"), "4.4.2"),
        (ConnectionResetError("reset"), "4.4.1"),
        (ssl.SSLError(1, "handshake failure"), "4.7.5"),
        (aiosmtplib.SMTPException("odd"), "4.4.0"),
    ],
)
def test_exceptions_map_to_replies(error: BaseException, enhanced: str) -> None:
    reply = reply_for(error, Phase.RCPT, "mx.x.test[192.0.2.1]:25")
    assert reply.enhanced == enhanced
    assert reply.is_permanent == enhanced.startswith("5")


def test_hang_up_after_the_final_dot_is_temporary_and_says_so() -> None:
    reply = reply_for(aiosmtplib.SMTPServerDisconnected("gone"), Phase.DATA, "mx")
    assert verdict(reply, Phase.DATA) is Verdict.DEFERRED
    assert "end of data" in reply.text


def test_unknown_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        reply_for(KeyError("bug"), Phase.RCPT)
