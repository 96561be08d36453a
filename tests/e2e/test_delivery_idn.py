"""Internationalised domains through the whole relay: IDNA 2008 in at ingress, out at delivery."""

from __future__ import annotations

import smtplib
import uuid

import pytest

from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e
A_LABEL = "xn--strae-oqa.test"  # straße.test (IDNA 2003 would have made it strasse.test)


def test_a_u_label_recipient_is_accepted_resolved_by_its_a_label_and_delivered(
    relay: RelayProcess, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.add_mx(A_LABEL, 10, "mx.ok.test")
    recipient = f"bob-{uuid.uuid4().hex[:6]}@straße.test"
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail("alice@example.org", ["SMTPUTF8"])[0] == 250
        assert client.rcpt(recipient)[0] == 250
        assert client.data(b"Subject: idn\r\n\r\nhello\r\n")[0] == 250
    eventually(
        lambda: any(recipient in m.rcpt_tos for m in list(sink.messages)), 20, "the delivery"
    )
    assert (A_LABEL, "MX") in dns.queries
    assert ("strasse.test", "MX") not in dns.queries


def test_a_domain_idna_2008_forbids_is_refused_at_rcpt(relay: RelayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail("alice@example.org", ["SMTPUTF8"])[0] == 250
        code, text = client.rcpt("bob@☃.test")  # IDNA 2003 made this xn--n3h.test
    assert (code, text.split()[0]) == (501, b"5.1.3")
