"""Delivery always sends canonical CRLF with dot-stuffing: no receiver can see a second message."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration

SMUGGLE = (
    b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<victim@x.test>\n"
    b"DATA\n\n.\r\n.\rsecond\r\n"
)


async def test_bare_line_ends_and_dots_cannot_end_the_message_early(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    await harness.send(["a@x.test"], body=SMUGGLE)
    await harness.wait_for(EventKind.DELIVERED, "a@x.test")
    await harness.flush(1)
    [received] = sink.messages
    assert received.rcpt_tos == ("a@x.test",)
    assert received.data == (
        b"Subject: smuggle\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@x.test>\r\n"
        b"RCPT TO:<victim@x.test>\r\nDATA\r\n\r\n.\r\n.\r\nsecond\r\n"
    )
    assert [a for a, _ in sink.attempts] == ["a@x.test"]
