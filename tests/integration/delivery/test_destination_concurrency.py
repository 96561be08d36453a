"""per_destination_concurrency caps sessions per domain; a slow domain slows only itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
DOMAINS = ("slow.test", "fast.test")  # one MX for both


async def peak_sessions(routed: Routed, sink: SmtpSink, cap: int) -> int:
    """Five slow messages to one domain at once, with ``cap`` sessions allowed: the peak."""
    harness = await routed(*DOMAINS, per_destination_concurrency=cap, concurrency=8)
    recipients = [f"slow0.4-{n}@slow.test" for n in range(5)]
    await asyncio.gather(*(harness.send([r]) for r in recipients))
    for recipient in recipients:
        await harness.wait_for(EventKind.DELIVERED, recipient, timeout=20)
    return sink.peak_data


async def test_sessions_per_destination_are_capped(routed: Routed, sink: SmtpSink) -> None:
    assert await peak_sessions(routed, sink, cap=2) == 2


async def test_without_a_cap_the_same_load_runs_in_parallel(routed: Routed, sink: SmtpSink) -> None:
    assert await peak_sessions(routed, sink, cap=8) > 2


async def test_a_tarpitting_domain_does_not_starve_other_domains(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(
        *DOMAINS,
        per_destination_concurrency=1,
        concurrency=3,
        destination_wait="0.5s",
        retry_schedule="1m",
    )
    for n in range(3):
        await harness.send([f"slow4-{n}@slow.test"])
    busy = await harness.wait_for(EventKind.DEFERRED, count=2, timeout=10)
    started = time.monotonic()
    await harness.send(["someone@fast.test"])
    await harness.wait_for(EventKind.DELIVERED, "someone@fast.test", timeout=10)
    assert time.monotonic() - started < 2.5, "the fast domain waited for the slow one"
    for event in busy:
        assert event.reply is not None and event.reply.enhanced == "4.4.5"
        assert event.recipient is not None and event.recipient.endswith("@slow.test")
    assert harness.of(EventKind.DELIVERED, "slow4-0@slow.test") == []  # still in its session
