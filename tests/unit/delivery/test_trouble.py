"""Every failure maps to a reply, and one function decides delivered / deferred / bounced.

Only a 2xx after the final dot delivers; every phase takes exactly its replies.
"""

from __future__ import annotations

import ssl

import aiosmtplib
import dns.exception
import dns.resolver
import pytest

from postline.delivery.smtpclient import ProtocolViolation
from postline.delivery.trouble import (
    EXPECTED,
    Phase,
    Verdict,
    expect,
    remote_reply,
    reply_for,
    verdict,
)
from postline.reply import SmtpReply


@pytest.mark.parametrize(
    ("code", "phase", "expected"),
    [
        (250, Phase.END_OF_DATA, Verdict.DELIVERED),
        (251, Phase.END_OF_DATA, Verdict.DELIVERED),
        (421, Phase.RCPT, Verdict.DEFERRED),
        (451, Phase.MAIL, Verdict.DEFERRED),
        (452, Phase.RCPT, Verdict.DEFERRED),
        (550, Phase.RCPT, Verdict.BOUNCED),
        (552, Phase.RCPT, Verdict.DEFERRED),  # RFC 5321 4.5.3.1.10
        (552, Phase.DATA, Verdict.BOUNCED),
        (554, Phase.DATA, Verdict.BOUNCED),
        (554, Phase.END_OF_DATA, Verdict.BOUNCED),
        (556, Phase.DNS, Verdict.BOUNCED),
    ],
)
def test_verdict_by_reply_code_and_phase(code: int, phase: Phase, expected: Verdict) -> None:
    assert verdict(SmtpReply(code=code), phase) is expected


@pytest.mark.parametrize(
    ("code", "phase"),
    [
        (250, Phase.DATA),  # the DATA command: the message was never sent
        (354, Phase.END_OF_DATA),
        (251, Phase.RCPT),
        (252, Phase.RCPT),
        (354, Phase.RCPT),
        (250, Phase.MAIL),
        (252, Phase.MAIL),
        (220, Phase.GREETING),
        (250, Phase.EHLO),
        (235, Phase.AUTH),
    ],
)
def test_only_a_2xx_after_the_final_dot_delivers(code: int, phase: Phase) -> None:
    assert verdict(SmtpReply(code=code), phase) is Verdict.DEFERRED


@pytest.mark.parametrize("enhanced", ["2.0.0", "4.2.0"])
def test_enhanced_code_of_another_class_never_delivers_nor_bounces(enhanced: str) -> None:
    assert verdict(SmtpReply(code=550, enhanced=enhanced), Phase.RCPT) is Verdict.DEFERRED
    reply = SmtpReply(code=250, enhanced="5.7.1")
    assert verdict(reply, Phase.END_OF_DATA) is Verdict.DEFERRED


@pytest.mark.parametrize(
    ("phase", "codes"),
    [
        (Phase.GREETING, [220]),
        (Phase.EHLO, [250]),
        (Phase.STARTTLS, [220]),
        (Phase.AUTH, [235, 334]),
        (Phase.MAIL, [250]),
        (Phase.RCPT, [250, 251]),
        (Phase.DATA, [354]),
        (Phase.END_OF_DATA, [250, 251]),
    ],
)
def test_each_phase_expects_exactly_its_replies(phase: Phase, codes: list[int]) -> None:
    assert set(codes) <= EXPECTED[phase]
    for code in codes:
        assert expect(phase, code, "fine") == SmtpReply(code=code, text="fine")
    for code in [220, 221, 235, 250, 251, 252, 334, 354]:
        if code not in EXPECTED[phase]:
            with pytest.raises(ProtocolViolation, match="unexpected reply"):
                expect(phase, code, "wrong")


@pytest.mark.parametrize("phase", list(EXPECTED))
def test_refusals_are_the_remotes_words_at_every_phase(phase: Phase) -> None:
    assert expect(phase, 451, "4.3.0 later") == SmtpReply(code=451, enhanced="4.3.0", text="later")
    assert expect(phase, 554, "5.7.1 no") == SmtpReply(code=554, enhanced="5.7.1", text="no")


def test_protocol_error_is_a_temporary_4_5_0_with_the_remotes_words() -> None:
    reply = remote_reply(252, "2.1.5 Cannot VRFY\n\x1b[31mred", Phase.RCPT)
    assert (reply.code, reply.enhanced) == (451, "4.5.0")
    assert reply.text == (
        "SMTP protocol error: unexpected reply at RCPT TO: '252 2.1.5 Cannot VRFY / \\x1b[31mred'"
    )
    assert verdict(reply, Phase.RCPT) is Verdict.DEFERRED


def test_enhanced_code_of_another_class_is_a_protocol_error() -> None:
    reply = remote_reply(550, "2.0.0 fine", Phase.RCPT)
    assert (reply.code, reply.enhanced) == (451, "4.5.0")
    assert "enhanced code of another class at RCPT TO: '550 2.0.0 fine'" in reply.text


def test_violation_from_the_wire_becomes_the_protocol_error_at_its_phase() -> None:
    violation = ProtocolViolation("malformed reply line", "25 ok")
    reply = reply_for(violation, Phase.END_OF_DATA, "mx")
    expected = "SMTP protocol error: malformed reply line after end of data: '25 ok'"
    assert (reply.code, reply.enhanced, reply.text) == (451, "4.5.0", expected)


def test_remote_reply_is_kept_word_for_word() -> None:
    error = aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "x@y")
    assert reply_for(error, Phase.RCPT) == SmtpReply(
        code=550, enhanced="5.1.1", text="No such user"
    )


def test_garbled_remote_code_becomes_a_temporary_protocol_error() -> None:
    error = aiosmtplib.SMTPResponseException(-1, "Response too long")
    reply = reply_for(error, Phase.RCPT)
    assert (reply.code, reply.enhanced) == (451, "4.5.0")


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
    reply = reply_for(aiosmtplib.SMTPServerDisconnected("gone"), Phase.END_OF_DATA, "mx")
    assert verdict(reply, Phase.END_OF_DATA) is Verdict.DEFERRED
    assert "end of data" in reply.text


def test_timeout_after_the_final_dot_says_where() -> None:
    reply = reply_for(aiosmtplib.SMTPReadTimeoutError("slow"), Phase.END_OF_DATA, "mx")
    assert str(reply) == "451 4.4.2 Timed out waiting for the remote server: after end of data (mx)"


def test_unknown_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        reply_for(KeyError("bug"), Phase.RCPT)
