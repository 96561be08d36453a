"""The ``--to`` conversation of ``postline doctor`` against scripted remotes on loopback.

Every step's reply is shown; the conversation never sends DATA; a remote's
control characters come back escaped; STARTTLS follows ``tls_policy``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from postline.app.doctor import smtp
from postline.app.doctor.report import Check, Status, render
from postline.app.doctor.smtp import Plan, Target, converse
from tests.support.certs import make_cert
from tests.support.net import free_port
from tests.support.remote import Mode, Remote
from tests.support.sink import SmtpSink

RCPT = "someone@example.test"


def plan(tls_policy: str = "opportunistic", ca_file: str | None = None) -> Plan:
    return Plan(helo="relay.test", rcpt=RCPT, tls_policy=tls_policy, ca_file=ca_file)


def steps(checks: list[Check]) -> list[tuple[str, Status]]:
    """(step, status) with the ``smtp host[address]:port`` prefix removed."""
    return [(check.check.split(" ", 2)[2], check.status) for check in checks]


async def talk(mode: str | Mode, tls_policy: str = "opportunistic") -> tuple[list[Check], Remote]:
    port = free_port()
    async with Remote("127.0.0.1", port, mode) as remote:
        checks = await converse(Target("mx.example.test", "127.0.0.1", port), plan(tls_policy))
    return checks, remote


async def test_a_well_behaved_remote_is_asked_up_to_rcpt_and_never_gets_data() -> None:
    checks, remote = await talk("well-behaved")
    assert steps(checks) == [
        ("connect", Status.PASS),
        ("greeting", Status.PASS),
        ("EHLO", Status.PASS),
        ("STARTTLS", Status.WARN),  # not offered: mail goes unencrypted
        ("MAIL FROM:<>", Status.PASS),
        ("RCPT TO", Status.PASS),
        ("QUIT", Status.PASS),
    ]
    assert remote.commands == ["EHLO relay.test", "MAIL FROM:<>", f"RCPT TO:<{RCPT}>", "QUIT"]
    assert checks[5].found == "250 2.1.5 recipient ok"


async def test_no_starttls_under_a_required_policy_stops_before_mail() -> None:
    checks, remote = await talk("well-behaved", tls_policy="required")
    assert steps(checks)[-1] == ("STARTTLS", Status.FAIL)
    assert not any(command.startswith("MAIL") for command in remote.commands)


async def test_tls_policy_none_skips_starttls() -> None:
    checks, _ = await talk("well-behaved", tls_policy="none")
    assert "STARTTLS" not in [step for step, _ in steps(checks)]


async def test_a_refused_recipient_fails_and_the_session_still_ends_with_quit() -> None:
    checks, remote = await talk(Mode(rcpt=b"550 5.1.1 no such user words-rcpt\r\n"))
    assert ("RCPT TO", Status.FAIL) in steps(checks)
    assert "550 5.1.1 no such user" in render(checks[5])
    assert remote.commands[-1] == "QUIT"


async def test_a_temporary_refusal_of_the_null_sender_warns_and_skips_rcpt() -> None:
    checks, remote = await talk(Mode(mail=b"451 4.7.1 greylisted\r\n"))
    assert ("MAIL FROM:<>", Status.WARN) in steps(checks)
    assert not any(command.startswith("RCPT") for command in remote.commands)


async def test_a_hang_up_is_named_at_its_step() -> None:
    checks, _ = await talk("hangup-rcpt")
    assert steps(checks)[-1] == ("RCPT TO", Status.FAIL)
    assert "closed" in checks[-1].found


async def test_a_hostile_greeting_is_printed_escaped() -> None:
    greeting = b"220 evil \x1b[2J\x07 ready\r\n"
    checks, _ = await talk(Mode(greeting=greeting))
    line = render(checks[1])
    assert "\x1b" not in line and "\x07" not in line
    assert "evil \\x1b[2J\\x07 ready" in line


async def test_a_closed_port_fails_the_connect_step() -> None:
    port = free_port()
    checks = await converse(Target("mx.example.test", "127.0.0.1", port), plan())
    assert steps(checks) == [("connect", Status.FAIL)]
    assert "port" in checks[0].advice


async def test_an_unverifiable_certificate_warns_and_the_conversation_goes_on(
    tmp_path: Path,
) -> None:
    cert, key = make_cert(tmp_path, "mx.example.test", days=90)
    with SmtpSink(tls_cert=cert, tls_key=key) as sink:
        target = Target("mx.example.test", "127.0.0.1", sink.port)
        checks = await converse(target, plan())
        verified = await converse(target, plan(ca_file=str(cert)))
        strict = await converse(target, plan(tls_policy="verify"))
    by_step = dict(steps(checks))
    assert by_step["STARTTLS"] is Status.WARN and by_step["RCPT TO"] is Status.PASS
    assert "certificate not verified" in checks[3].found
    assert all(status is Status.PASS for _, status in steps(verified))
    assert "certificate verified for mx.example.test" in verified[3].found
    assert dict(steps(strict))["STARTTLS"] is Status.FAIL
    assert sink.messages == []


async def test_a_silent_server_fails_its_step_after_the_reply_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtp, "REPLY_TIMEOUT", 0.2)
    checks, _ = await talk(Mode(greeting=b""))
    assert steps(checks)[-1] == ("greeting", Status.FAIL)
    assert checks[-1].found == "no reply within 0.2s"


async def test_a_tarpit_is_cut_off_by_the_session_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtp, "SESSION_TIMEOUT", 0.3)
    checks, _ = await talk(Mode(greeting=b""))
    assert steps(checks)[-1] == ("session", Status.FAIL)
    assert "longer than 0.3s" in checks[-1].found
