"""One relay identity: with only ``[relay] hostname`` set (the e2e relay sets
``relay.test`` and no ``[ingress] hostname`` or ``[delivery] helo_name``), that name
is ingress's greeting and its ``Received:`` line, delivery's EHLO, and the
``Reporting-MTA`` of the DSN it sends."""

from __future__ import annotations

import smtplib
import uuid

import pytest

from tests.support.relay import RelayProcess, eventually
from tests.support.sink import Received, SmtpSink

pytestmark = pytest.mark.e2e
NAME = "relay.test"


def test_the_relay_hostname_is_the_greeting_the_helo_the_received_line_and_the_reporting_mta(
    relay: RelayProcess, sink: SmtpSink
) -> None:
    assert relay.config["relay"]["hostname"] == NAME
    assert "hostname" not in relay.config.get("ingress", {})
    assert "helo_name" not in relay.config.get("delivery", {})
    sender = f"identity-{uuid.uuid4().hex[:8]}@ok.test"
    good = f"someone-{uuid.uuid4().hex[:8]}@ok.test"
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        code, banner = client.connect("127.0.0.1", relay.smtp_port)
        assert code == 220 and banner.split()[0].decode() == NAME
        client.ehlo("client.test")
        refused = client.sendmail(sender, [good, "permfail@ok.test"], b"Subject: id\r\n\r\nx\r\n")
        assert refused == {}

    def delivered() -> list[Received]:
        return [m for m in list(sink.messages) if good in m.rcpt_tos]

    eventually(delivered, 15, "the message at the sink")
    [message] = delivered()
    assert message.helo == NAME
    assert f"by {NAME}".encode() in message.data

    def bounces() -> list[Received]:
        return [m for m in list(sink.messages) if m.rcpt_tos == (sender,)]

    eventually(bounces, 15, "the DSN for permfail@ok.test")
    [dsn] = bounces()
    assert dsn.helo == NAME
    assert f"Reporting-MTA: dns; {NAME}".encode() in dsn.data
