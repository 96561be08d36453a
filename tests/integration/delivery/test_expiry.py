"""A recipient that keeps failing temporarily expires at max_queue_lifetime, with one DSN."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_recipient_expires_after_max_queue_lifetime_and_is_bounced_once(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="1s", max_queue_lifetime="3s")
    await harness.send(["tempfail@x.test"])

    [expired] = await harness.wait_for(EventKind.EXPIRED, "tempfail@x.test", timeout=20)
    deferred = harness.of(EventKind.DEFERRED, "tempfail@x.test")
    assert len(deferred) >= 2
    assert [e.attempt for e in deferred] == list(range(1, len(deferred) + 1))
    assert expired.attempt == len(deferred) + 1
    assert expired.reply is not None
    assert (expired.reply.code, expired.reply.enhanced) == (451, "4.3.0")  # the last remote words
    assert expired.reason is not None and expired.reason.startswith("expired")
    # never kept past the lifetime: the last attempt is within 3s of the first
    assert (expired.at - deferred[0].at).total_seconds() <= 3.5
    await harness.flush(expired.attempt)
    [dsn] = harness.submitted
    text = dsn.body.decode()
    assert "Action: failed" in text
    assert "Status: 4.3.0" in text
    assert "delivery time expired" in text
    attempts = len(sink.attempts)
    assert attempts == expired.attempt
    assert sink.messages == []
