"""A server that drips replies byte by byte is cut off by the attempt's wall-clock cap."""

from __future__ import annotations

import time

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_drip_feeding_server_is_deferred_at_the_wall_clock_cap(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink
) -> None:
    dns.add_mx("tarpit.test", 10, "mx.tarpit.test")
    dns.add_a("mx.tarpit.test", "127.0.0.1")
    # Each reply takes ~1.5s, under the 5s per-reply timeout; RCPT + end of data exceed 2s.
    harness = await start_delivery(attempt_timeout="2s", command_timeout="5s", retry_schedule="1m")
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
