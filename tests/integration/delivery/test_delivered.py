"""A recipient whose MX accepts the message is delivered once, with its reply recorded."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import sink_mx
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_message_is_delivered_to_the_mx_and_recorded(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed()
    envelope = await harness.send(["alice@x.test", "bob@x.test"])

    [event_a] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    [event_b] = await harness.wait_for(EventKind.DELIVERED, "bob@x.test")
    [received] = sink.wait_for(1, 5)
    assert received.rcpt_tos == ("alice@x.test", "bob@x.test")  # one transaction per domain
    assert received.mail_from == "sender@example.org"
    assert event_a.message_id == envelope.message_id
    assert event_a.mail_from == "sender@example.org"
    assert event_a.attempt == 1
    assert event_a.mx == sink_mx(sink.port)
    assert event_a.reply is not None and event_a.reply.code == 250
    assert event_a.queued_seconds is not None and event_a.queued_seconds >= 0
    assert event_b.reply == event_a.reply
    await harness.flush(1)
    assert harness.of(EventKind.DEFERRED) == []
    assert harness.submitted == []
