"""A server that drips replies byte by byte is cut off by the attempt's wall-clock cap."""

from __future__ import annotations

import time

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_drip_feeding_server_is_deferred_at_the_wall_clock_cap(
    routed: Routed, sink: SmtpSink
) -> None:
    # Each reply takes ~1.5s, under the 5s per-reply timeout; RCPT + end of data exceed 2s.
    harness = await routed(
        "tarpit.test", attempt_timeout="2s", command_timeout="5s", retry_schedule="1m"
    )
    started = time.monotonic()
    await harness.send(["drip1.5-x@tarpit.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "drip1.5-x@tarpit.test")
    assert time.monotonic() - started < 4.5
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.4.2")
    assert "time limit" in deferred.reply.text
    await harness.flush(1)
    assert harness.of(EventKind.DELIVERED) == []
    assert sink.messages == []
