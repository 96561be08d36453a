"""Exactly one RFC 3464 report per failed set of recipients, with the original headers."""

from __future__ import annotations

import email
import email.policy

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed

pytestmark = pytest.mark.integration

BODY = b"From: Alice <alice@example.org>\r\nSubject: Quarterly report\r\n\r\nsecret body\r\n"


@pytest.mark.usefixtures("sink")
async def test_failures_in_two_domains_give_one_dsn_listing_both(routed: Routed) -> None:
    harness = await routed()
    envelope = await harness.send(
        ["permfail@x.test", "someone@nowhere.test", "ok@x.test"],
        mail_from="alice@example.org",
        body=BODY,
    )
    await harness.flush(1)
    [dsn] = harness.submitted
    [sent] = harness.of(EventKind.DSN_SENT)
    assert sent.message_id == envelope.message_id
    assert set(sent.rcpt_to or ()) == {"permfail@x.test", "someone@nowhere.test"}
    dsn_envelope = dsn.envelope()
    assert (dsn_envelope.mail_from, dsn_envelope.rcpt_to) == ("", ("alice@example.org",))
    assert dsn_envelope.is_bounce and dsn_envelope.message_id != envelope.message_id
    report = email.message_from_bytes(dsn.body, policy=email.policy.default)
    assert report["To"].addresses[0].addr_spec == "alice@example.org"
    assert report["Auto-Submitted"] == "auto-replied"
    human, status, headers = report.iter_parts()
    status_text = status.as_string()
    assert "Final-Recipient: rfc822; permfail@x.test" in status_text
    assert "Final-Recipient: rfc822; someone@nowhere.test" in status_text
    assert status_text.count("Action: failed") == 2
    assert "Remote-MTA: dns; mx.x.test" in status_text
    assert "Status: 5.1.2" in status_text
    original = headers.get_payload()
    assert "Subject: Quarterly report" in str(original)
    assert b"secret body" not in dsn.body
    assert "ok@x.test" not in human.get_content()
