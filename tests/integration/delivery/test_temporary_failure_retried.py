"""451 twice then 250: deferred twice through the retry tier, then delivered exactly once."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_recipient_is_retried_through_the_tier_queue_until_delivered(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="1s")
    envelope = await harness.send(["flaky2-a@x.test"])

    [delivered] = await harness.wait_for(EventKind.DELIVERED, "flaky2-a@x.test", timeout=20)
    deferred = harness.of(EventKind.DEFERRED, "flaky2-a@x.test")
    assert [e.attempt for e in deferred] == [1, 2]
    assert delivered.attempt == 3
    for event in deferred:
        assert event.reply is not None and (event.reply.code, event.reply.enhanced) == (
            451,
            "4.3.0",
        )
        assert event.next_attempt_at is not None
        assert 0.9 <= (event.next_attempt_at - event.at).total_seconds() <= 1.5
        assert event.reason is not None and "tier 1s" in event.reason
    # each retry came back no earlier than the tier's TTL
    assert (deferred[1].at - deferred[0].at).total_seconds() >= 0.9
    assert (delivered.at - deferred[1].at).total_seconds() >= 0.9
    assert delivered.queued_seconds is not None and delivered.queued_seconds >= 1.8
    assert [m.rcpt_tos for m in sink.messages] == [("flaky2-a@x.test",)]
    assert sink.attempts == [("flaky2-a@x.test", 451)] * 2 + [("flaky2-a@x.test", 250)]
    await harness.flush(3)
    assert harness.submitted == []
    assert {e.message_id for e in harness.events} == {envelope.message_id}
