"""Sessions are kept and reused per destination host, with RSET between transactions."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import DeliveryHarness
from tests.support.broker import wait_until
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
DOMAINS = ("x.test", "y.test")  # one MX for both


async def send_one_by_one(harness: DeliveryHarness, recipients: list[str]) -> None:
    for recipient in recipients:
        await harness.send([recipient])
        await harness.wait_for(EventKind.DELIVERED, recipient)


async def test_consecutive_messages_share_one_session_with_rset(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS)
    await send_one_by_one(harness, ["a@x.test", "b@x.test", "c@y.test"])  # y.test: same MX
    messages = sink.wait_for(3, 5)
    assert len({m.peer for m in messages}) == 1, "each message used a new connection"
    talks = harness.of(EventKind.CONVERSATION)
    assert len({t.session_id for t in talks}) == 1
    later = [t.transcript or [] for t in talks[1:]]
    assert all("> RSET" in lines for lines in later)
    assert all(not any(line.startswith("> EHLO") for line in lines) for lines in later)


async def test_reuse_limit_of_one_opens_a_session_per_message(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS, max_messages_per_connection=1)
    await send_one_by_one(harness, ["a@x.test", "b@x.test"])
    assert len({m.peer for m in sink.wait_for(2, 5)}) == 2
    talks = harness.of(EventKind.CONVERSATION)
    assert all("> RSET" not in (t.transcript or []) for t in talks)


async def test_idle_session_is_closed_after_the_idle_timeout(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS, connection_idle_timeout="0.3s")
    await send_one_by_one(harness, ["a@x.test"])
    pool = harness.service.pool
    assert pool is not None
    await wait_until(lambda: pool.idle_count == 0, 5, "the idle session to be closed")
    await send_one_by_one(harness, ["b@x.test"])
    assert len({m.peer for m in sink.wait_for(2, 5)}) == 2


async def test_session_closed_by_the_server_is_replaced_not_failed(
    routed: Routed, smtp_port: int
) -> None:
    harness = await routed(*DOMAINS)
    with SmtpSink("127.0.0.1", smtp_port) as first:
        await send_one_by_one(harness, ["a@x.test"])
        first.wait_for(1, 5)
    with SmtpSink("127.0.0.1", smtp_port) as second:  # the kept session is dead now
        await send_one_by_one(harness, ["b@x.test"])
        second.wait_for(1, 5)
    assert harness.of(EventKind.DEFERRED) == []


async def test_open_connections_gauge_returns_to_zero_on_close(
    routed: Routed, sink: SmtpSink
) -> None:
    before = open_connections()
    harness = await routed(*DOMAINS)
    await send_one_by_one(harness, ["a@x.test"])
    assert open_connections() == before + 1  # kept for reuse
    await harness.stop()
    assert open_connections() == before


def open_connections() -> float:
    value = REGISTRY.get_sample_value("postline_delivery_connections_open")
    assert value is not None
    return value
