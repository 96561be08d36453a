"""On drain (SIGTERM), a delivery in progress finishes and is recorded; nothing new starts."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from postline.topology import Stage
from tests.integration.delivery.conftest import Routed
from tests.support.broker import queue_depth, wait_until
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_in_flight_delivery_completes_during_drain(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed()
    await harness.send(["slow1-a@x.test"])
    await wait_until(lambda: len(sink.attempts) == 1, 10, "the session to reach RCPT")
    await harness.service.drain(10)
    await harness.wait_for(EventKind.DELIVERED, "slow1-a@x.test")
    assert len(sink.wait_for(1, 5)) == 1

    await harness.send(["b@x.test"])  # after drain: stays queued for another worker
    deliver = harness.service.worker.bus.topology.queue_name(Stage.DELIVER)
    url = harness.settings.broker.url
    await wait_until(lambda: queue_depth(url, deliver), 5, "the new message to wait in deliver")
    assert sink.attempts == [("slow1-a@x.test", 250)]
