"""Trail reasons say what happened: no "remote replied" when it did not, the right phase.

A timeout after the final dot is not a reply to DATA; an over-long greeting is not
a failed connection; a malformed reply line is shown as the remote sent it.
"""

from __future__ import annotations

import pytest

from postline.models import Event, EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.remote import Remote

pytestmark = pytest.mark.integration

RECIPIENT = "rcpt@x.test"


async def deferral(routed: Routed, smtp_port: int, mode: str) -> Event:
    async with Remote("127.0.0.1", smtp_port, mode):
        harness = await routed(retry_schedule="1m")
        await harness.send([RECIPIENT])
        await harness.flush(1)
    kinds = [(e.kind.value, str(e.reply), e.reason) for e in harness.events if e.recipient]
    deferred = harness.of(EventKind.DEFERRED, RECIPIENT)
    assert len(deferred) == 1 and deferred[0].reply is not None, kinds
    return deferred[0]


async def test_timeout_after_the_final_dot_is_not_a_reply_to_data(
    routed: Routed, smtp_port: int
) -> None:
    deferred = await deferral(routed, smtp_port, "end-silent")
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.2")
    assert "after end of data" in deferred.reply.text
    assert deferred.reason == "failed after end of data; retry via tier 1m"


async def test_over_long_greeting_is_a_greeting_failure_not_a_connection_failure(
    routed: Routed, smtp_port: int
) -> None:
    deferred = await deferral(routed, smtp_port, "greeting-long")
    assert deferred.reason == "failed at greeting; retry via tier 1m"


async def test_malformed_reply_line_is_shown_as_the_remote_sent_it(
    routed: Routed, smtp_port: int
) -> None:
    deferred = await deferral(routed, smtp_port, "rcpt-malformed")
    assert deferred.reply is not None
    assert "'25 words-malformed'" in deferred.reply.text, str(deferred.reply)
    assert deferred.reason == "failed at RCPT TO; retry via tier 1m"
