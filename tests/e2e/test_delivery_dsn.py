"""DSN parameters through the whole relay: NOTIFY=SUCCESS earns a relayed DSN, NEVER no bounce."""

from __future__ import annotations

import email
import email.policy
import smtplib
import uuid

import pytest

from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e


def submit(relay: RelayProcess, sender: str, rcpt: str, *rcpt_options: str) -> None:
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail(sender, ["RET=HDRS", f"ENVID={sender.split('@')[0]}"])[0] == 250
        assert client.rcpt(rcpt, list(rcpt_options))[0] == 250
        assert client.data(b"Subject: dsn e2e\r\n\r\nsecret body\r\n")[0] == 250


def dsns_to(sink: SmtpSink, sender: str) -> list[bytes]:
    return [
        m.data for m in list(sink.messages) if m.rcpt_tos == (sender,) and m.mail_from in ("", "<>")
    ]


def test_notify_success_gets_a_relayed_dsn_back(relay: RelayProcess, sink: SmtpSink) -> None:
    sender = f"s{uuid.uuid4().hex[:8]}@ok.test"
    submit(relay, sender, f"r-{sender}", "NOTIFY=SUCCESS", "ORCPT=rfc822;orig@ok.test")
    eventually(lambda: dsns_to(sink, sender), 15, "the relayed DSN")
    [dsn] = dsns_to(sink, sender)
    report = email.message_from_bytes(dsn, policy=email.policy.default).as_string()
    assert "Action: relayed" in report
    assert f"Original-Envelope-Id: {sender.split('@')[0]}" in report
    assert "Original-Recipient: rfc822; orig@ok.test" in report


def test_notify_never_gets_no_bounce(relay: RelayProcess, sink: SmtpSink) -> None:
    sender = f"s{uuid.uuid4().hex[:8]}@ok.test"
    submit(relay, sender, "permfail-never@ok.test", "NOTIFY=NEVER")
    submit(relay, sender, "permfail-other@ok.test")  # no NOTIFY: the one bounce
    eventually(lambda: dsns_to(sink, sender), 15, "the bounce for the other recipient")
    eventually(
        lambda: any("permfail-never" in str(line) for line in relay.trail("failure")),
        15,
        "the failure trail line",
    )
    [bounce] = dsns_to(sink, sender)
    assert b"permfail-other@ok.test" in bounce and b"permfail-never" not in bounce
