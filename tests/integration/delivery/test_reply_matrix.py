"""Replies at MAIL, RCPT and end of data: 4xx (and 421, 452, 552 at RCPT) defer, 5xx bounce."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import sink_mx
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration

CASES = [
    # (sender, recipient, expected kind, code, enhanced)
    ("tempfail@example.org", "a@x.test", EventKind.DEFERRED, 451, "4.3.0"),
    ("permfail@example.org", "a@x.test", EventKind.BOUNCED, 550, "5.1.0"),
    ("goodbye@example.org", "a@x.test", EventKind.DEFERRED, 421, "4.3.2"),
    ("s@example.org", "tempfail@x.test", EventKind.DEFERRED, 451, "4.3.0"),
    ("s@example.org", "goodbye@x.test", EventKind.DEFERRED, 421, "4.3.2"),
    ("s@example.org", "full@x.test", EventKind.DEFERRED, 452, "4.2.2"),
    ("s@example.org", "quota@x.test", EventKind.DEFERRED, 552, "5.2.2"),
    ("s@example.org", "permfail@x.test", EventKind.BOUNCED, 550, "5.1.1"),
    ("s@example.org", "dataperm@x.test", EventKind.BOUNCED, 554, "5.6.0"),
    ("s@example.org", "datatemp@x.test", EventKind.DEFERRED, 451, "4.3.0"),
    ("s@example.org", "data421@x.test", EventKind.DEFERRED, 421, "4.3.2"),
]


@pytest.mark.parametrize(("sender", "recipient", "kind", "code", "enhanced"), CASES)
async def test_reply_decides_the_outcome(
    routed: Routed,
    sink: SmtpSink,
    sender: str,
    recipient: str,
    kind: EventKind,
    code: int,
    enhanced: str,
) -> None:
    harness = await routed(retry_schedule="1m")
    await harness.send([recipient], mail_from=sender)
    [event] = await harness.wait_for(kind, recipient)
    assert event.reply is not None
    assert (event.reply.code, event.reply.enhanced) == (code, enhanced)
    assert event.mx == sink_mx(sink.port)
    await harness.flush(1)
    assert event.session_id in {t.session_id for t in harness.of(EventKind.CONVERSATION)}
    assert harness.of(EventKind.DELIVERED) == []
    assert sink.messages == []


async def test_hang_up_after_the_final_dot_is_deferred_then_delivered_once(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="1s")
    await harness.send(["hangup1-a@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "hangup1-a@x.test")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.2")
    assert "end of data" in deferred.reply.text
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "hangup1-a@x.test", timeout=20)
    assert delivered.attempt == 2
    await harness.flush(2)
    assert len(harness.of(EventKind.DELIVERED)) == 1
    assert len(sink.messages) == 1
