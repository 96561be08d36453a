"""A 5xx at RCPT bounces the recipient once, with the remote's words, and sends one DSN."""

from __future__ import annotations

import email
import email.policy

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import sink_mx
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_550_at_rcpt_bounces_with_the_remote_reply_and_one_dsn(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    envelope = await harness.send(["permfail@x.test", "ok@x.test"])

    [bounced] = await harness.wait_for(EventKind.BOUNCED, "permfail@x.test")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (550, "5.1.1")
    assert bounced.reply.text == "No such user here"
    assert bounced.mx == sink_mx(sink.port)
    assert bounced.reason == "remote replied to RCPT TO"
    await harness.wait_for(EventKind.DELIVERED, "ok@x.test")
    [dsn_sent] = await harness.wait_for(EventKind.DSN_SENT)
    assert dsn_sent.rcpt_to == ("permfail@x.test",)

    await harness.flush(1)
    [talk] = harness.of(EventKind.CONVERSATION)
    assert bounced.session_id is not None and bounced.session_id == talk.session_id
    assert bounced.tls is None  # the sink offers no STARTTLS
    [dsn] = harness.submitted
    dsn_envelope = dsn.envelope()
    assert dsn_envelope.mail_from == ""
    assert dsn_envelope.is_bounce
    assert dsn_envelope.rcpt_to == ("sender@example.org",)
    report = email.message_from_bytes(dsn.body, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = [part.get_content_type() for part in report.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    text = dsn.body.decode()
    assert "Final-Recipient: rfc822; permfail@x.test" in text
    assert "Status: 5.1.1" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1 No such user here" in text
    assert f"X-Postline-Queue-ID: {envelope.message_id}" in text
    assert [m.rcpt_tos for m in sink.messages] == [("ok@x.test",)]
    assert harness.of(EventKind.DEFERRED) == []


async def test_no_dsn_for_a_null_sender(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed()
    await harness.send(["permfail@x.test"], mail_from="")
    await harness.wait_for(EventKind.BOUNCED, "permfail@x.test")
    await harness.flush(1)
    assert harness.submitted == []
    assert harness.of(EventKind.DSN_SENT) == []


async def test_a_bounce_is_never_bounced(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed()
    await harness.send(["permfail@x.test"], mail_from="postmaster@example.org", is_bounce=True)
    await harness.wait_for(EventKind.BOUNCED, "permfail@x.test")
    await harness.flush(1)
    assert harness.submitted == []
    assert harness.of(EventKind.DSN_SENT) == []
