"""A dead MX costs one timeout, not one per message; a busy destination costs no retry step."""

from __future__ import annotations

import time

import pytest

from postline.models import EventKind, Peer
from tests.integration.delivery.conftest import MxFor, Routed, StartDelivery
from tests.support.broker import wait_until
from tests.support.remote import Mode, Remote
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
SILENT = Mode(greeting=b"")  # accepts the connection, never greets


async def test_a_dead_mx_is_skipped_for_the_next_message_without_a_second_timeout(
    start_delivery: StartDelivery, mx_for: MxFor, sink: SmtpSink
) -> None:
    mx_for("x.test", host="mx2.x.test", preference=20)
    mx_for("x.test", host="mx1.x.test", address="127.0.0.2")
    async with Remote("127.0.0.2", sink.port, SILENT) as dead:
        harness = await start_delivery(
            greeting_timeout="3s", host_failure_limit=1, host_backoff="1m"
        )
        await harness.send(["alice@x.test"])
        await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
        started = time.monotonic()
        second = await harness.send(["bob@x.test"])
        [delivered] = await harness.wait_for(EventKind.DELIVERED, "bob@x.test")
        elapsed = time.monotonic() - started
    assert dead.connections == 1
    assert elapsed < 3.0, f"the second message waited {elapsed:.1f}s for the dead host"
    assert delivered.mx == Peer(name="mx2.x.test", ip="127.0.0.1", port=sink.port)
    lines = [
        line
        for talk in harness.of(EventKind.CONVERSATION, message_id=second.message_id)
        for line in talk.transcript or []
    ]
    skipped = f"skipped: host mx1.x.test[127.0.0.2]:{sink.port} down since "
    assert any(line.startswith(skipped) for line in lines), lines


async def test_a_busy_destination_requeues_without_counting_the_attempt(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(
        per_destination_concurrency=1, destination_wait="0.3s", retry_schedule="1s,1h"
    )
    await harness.send(["slow1-a@x.test"])  # holds the only session for a second
    await wait_until(lambda: bool(sink.attempts), 5, "the slow message to hold the session")
    await harness.send(["b@x.test"])
    [busy, *_] = await harness.wait_for(EventKind.DEFERRED, "b@x.test")
    assert busy.reply is not None and busy.reply.enhanced == "4.4.5"
    assert busy.reason is not None and "attempt not counted" in busy.reason
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "b@x.test", timeout=20)
    assert delivered.attempt == 1  # the busy turns did not use up the 1s step of the schedule
