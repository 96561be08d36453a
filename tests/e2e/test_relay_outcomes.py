"""A stock SMTP client submits; all four services carry the mail; trails prove the outcome."""

from __future__ import annotations

import smtplib
import uuid

import pytest

from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e


def submit(relay: RelayProcess, rcpt: str, mail_from: str = "sender@example.org") -> str:
    """Submit one message; return its X-Test-Id. Asserts the 250 queued reply."""
    test_id = uuid.uuid4().hex
    body = (
        f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: e2e {test_id}\r\n"
        f"X-Test-Id: {test_id}\r\n\r\nhello\r\n.dot-stuffed line\r\n"
    )
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        client.mail(mail_from)
        code, _ = client.rcpt(rcpt)
        assert code == 250
        code, text = client.data(body.encode())
    assert code == 250, text
    assert text.decode().startswith("2.0.0 Ok: queued as ")
    return test_id


def lines_for(relay: RelayProcess, trail: str, rcpt: str) -> list[dict[str, object]]:
    return [line for line in relay.trail(trail) if line.get("recipient") == rcpt]


def stored_with(sink: SmtpSink, test_id: str) -> list[bytes]:
    return [m.data for m in list(sink.messages) if f"X-Test-Id: {test_id}".encode() in m.data]


def test_message_is_delivered_and_the_success_trail_and_metrics_show_it(
    relay: RelayProcess, sink: SmtpSink
) -> None:
    accepted_before = relay.metric_value("postline_ingress_messages_total", {"reply_class": "2xx"})
    delivered_before = relay.metric_value(
        "postline_delivery_attempts_total", {"result": "delivered"}, service="delivery"
    )
    rcpt = f"alice-{uuid.uuid4().hex[:8]}@ok.test"
    test_id = submit(relay, rcpt)

    eventually(lambda: lines_for(relay, "success", rcpt), 20, "the success trail line")
    [line] = lines_for(relay, "success", rcpt)
    assert str(line["mx_host"]).startswith("mx.ok.test[127.0.0.2]")
    assert line["kind"] == "delivered"
    [data] = stored_with(sink, test_id)
    assert b"\r\nReceived: " in b"\r\n" + data  # the filter's trace header
    assert b"Message-ID: " in data
    assert b"\r\n.dot-stuffed line\r\n" in data  # dot-stuffing undone exactly once
    assert (
        relay.metric_value("postline_ingress_messages_total", {"reply_class": "2xx"})
        == accepted_before + 1
    )
    eventually(
        lambda: (
            relay.metric_value(
                "postline_delivery_attempts_total", {"result": "delivered"}, service="delivery"
            )
            == delivered_before + 1
        ),
        5,
        "the delivered counter to move",
    )
    queue = [e["kind"] for e in relay.trail("queue") if e.get("message_id") == line["message_id"]]
    assert "received" in queue


def test_recipient_refused_with_550_at_rcpt_lands_in_the_failure_trail(
    relay: RelayProcess, sink: SmtpSink
) -> None:
    rcpt = f"permfail-{uuid.uuid4().hex[:8]}@ok.test"
    test_id = submit(relay, rcpt)
    eventually(lambda: lines_for(relay, "failure", rcpt), 20, "the failure trail line")
    [line] = lines_for(relay, "failure", rcpt)
    assert line["kind"] == "bounced"
    reply = line["reply"]
    assert isinstance(reply, dict)
    assert reply["code"] == 550
    assert reply["enhanced"] == "5.1.1"
    assert stored_with(sink, test_id) == []
    assert lines_for(relay, "success", rcpt) == []


def test_451_twice_then_250_is_delivered_after_two_retries_through_the_tiers(
    relay: RelayProcess, sink: SmtpSink
) -> None:
    rcpt = f"flaky2-{uuid.uuid4().hex[:8]}@ok.test"
    test_id = submit(relay, rcpt)
    eventually(lambda: lines_for(relay, "success", rcpt), 30, "delivery after two retries")
    deferrals = [e for e in lines_for(relay, "queue", rcpt) if e["kind"] == "deferred"]
    assert len(deferrals) == 2
    assert all(d["next_attempt_at"] for d in deferrals)
    assert [code for address, code in list(sink.attempts) if address == rcpt] == [451, 451, 250]
    assert len(stored_with(sink, test_id)) == 1
    [line] = lines_for(relay, "success", rcpt)
    assert line["attempts"] == 3


def test_a_domain_that_does_not_exist_lands_in_the_failure_trail(relay: RelayProcess) -> None:
    rcpt = f"bob-{uuid.uuid4().hex[:8]}@nxdomain.test"
    submit(relay, rcpt)
    eventually(lambda: lines_for(relay, "failure", rcpt), 20, "the failure trail line")
    [line] = lines_for(relay, "failure", rcpt)
    assert line["kind"] == "bounced"
    reply = line["reply"]
    assert isinstance(reply, dict)
    assert reply["enhanced"] == "5.1.2"
