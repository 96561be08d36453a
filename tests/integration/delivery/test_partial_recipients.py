"""One transaction, three fates: 2xx delivered once, only the 4xx retried, the 5xx bounced."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_only_the_temporarily_failed_recipient_is_retried(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="1s")
    await harness.send(["ok@x.test", "flaky1-t@x.test", "permfail@x.test"])

    await harness.wait_for(EventKind.DELIVERED, "flaky1-t@x.test", timeout=20)
    await harness.flush(2)
    delivered = harness.of(EventKind.DELIVERED)
    assert sorted((e.recipient, e.attempt) for e in delivered) == [
        ("flaky1-t@x.test", 2),
        ("ok@x.test", 1),
    ]
    assert [(e.recipient, e.attempt) for e in harness.of(EventKind.DEFERRED)] == [
        ("flaky1-t@x.test", 1)
    ]
    assert [(e.recipient, e.attempt) for e in harness.of(EventKind.BOUNCED)] == [
        ("permfail@x.test", 1)
    ]
    # the first transaction carried ok@ only; the retry carried flaky1-t@ only
    assert [m.rcpt_tos for m in sink.messages] == [("ok@x.test",), ("flaky1-t@x.test",)]
    assert [a for a, _ in sink.attempts].count("permfail@x.test") == 1
    assert [a for a, _ in sink.attempts].count("ok@x.test") == 1
    assert len(harness.submitted) == 1  # one DSN, for the bounced recipient only
    assert b"Final-Recipient: rfc822; permfail@x.test" in harness.submitted[0].body
    assert b"ok@x.test" not in harness.submitted[0].body.split(b"text/rfc822-headers")[0]
