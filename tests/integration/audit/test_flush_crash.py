"""A flush that dies mid-walk loses nothing; it duplicates at most the messages in flight.

Three ways to die: the task cancelled, the connection closed under it, and the
process killed with SIGKILL (``flush_child``). Each time every message is
afterwards still in its tier or copied to ``deliver`` (none lost), and the only
messages in both are ones that were in flight (at most the window), the same
message id and attempt twice: recognisable, and dropped by the done markers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from postline.audit.flushplan import Request, SourceKind, sources
from postline.bus import Bus
from postline.models import ENVELOPE_HEADER, Envelope
from postline.topology import Stage
from tests.integration.audit.flush_support import (
    SCHEDULE,
    Stack,
    depth,
    drain,
    make_flusher,
    park_in_tier,
    stack,
)
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration

WINDOW = 8
ROOT = Path(__file__).parents[3]


class StallingPublisher:
    """Publishes (confirmed), then after ``after`` publishes stalls or closes a connection."""

    def __init__(self, bus: Bus, after: int, close: Any = None) -> None:
        self.bus, self.after, self.close = bus, after, close
        self.count = 0
        self.reached = asyncio.Event()

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await self.bus.publish(*args, **kwargs)
        self.count += 1
        if self.count >= self.after:
            self.reached.set()
            if self.close is not None:
                await self.close()
            await asyncio.Event().wait()  # confirmed, never acked: in flight when it dies


async def where_they_are(s: Stack) -> tuple[Counter[tuple[str, int]], Counter[tuple[str, int]]]:
    """(id, attempt) counts in deliver and in the tier (both drained)."""
    url = s.settings.broker.url

    def keys(seen: list[Any]) -> Counter[tuple[str, int]]:
        return Counter(
            (m.message_id, Envelope.from_header(m.headers[ENVELOPE_HEADER]).attempt) for m in seen
        )

    moved = keys(await drain(url, s.topology.queue_name(Stage.DELIVER)))
    kept = keys(await drain(url, s.topology.tier_queue("1h")))
    return moved, kept


def assert_nothing_lost(ids: list[str], moved: Counter[Any], kept: Counter[Any]) -> set[str]:
    """Every id somewhere, at most twice, and only the in-flight ones twice; the duplicates."""
    everywhere = moved + kept
    assert {mid for mid, _ in everywhere} == set(ids), "a message was lost"
    assert max(everywhere.values()) <= 2
    twice = {mid for (mid, _), n in everywhere.items() if n == 2}
    assert len(twice) <= WINDOW, twice
    return twice


def all_back(s: Stack, expected: int) -> Any:
    """A predicate: at least ``expected`` messages ready in the tier and deliver together."""
    url, tier, deliver = s.settings.broker.url, s.topology.tier_queue("1h"), ""
    deliver = s.topology.queue_name(Stage.DELIVER)

    async def check() -> bool:
        return await depth(url, tier) + await depth(url, deliver) >= expected

    return check


async def walk_until_it_dies(s: Stack, ids: list[str], close: bool) -> None:
    source = next(x for x in sources(s.topology, {SourceKind.TIER}) if x.queue.endswith("1h"))
    connection = await s.bus.open_connection("flush")
    dies = connection.close if close else None
    publisher = StallingPublisher(s.bus, after=len(ids) // 3, close=dies)
    flusher = make_flusher(s.bus, s.state, publisher, window=WINDOW)
    request = Request("R1", "retry", frozenset(ids))
    walk = asyncio.create_task(flusher.flush(connection, source, [request]))
    await asyncio.wait_for(publisher.reached.wait(), 30)
    await asyncio.sleep(0.2)  # let the rest of the window reach its stall
    walk.cancel()
    await asyncio.gather(walk, return_exceptions=True)
    if not close:
        await connection.close()
    await wait_until(all_back(s, len(ids)), 15, "the unacked messages to return")


@pytest.mark.parametrize("close", [False, True], ids=["cancelled", "connection-closed"])
async def test_a_flush_that_dies_mid_walk_loses_nothing(broker_settings, close: bool):
    ids = [f"C{n:03d}" for n in range(120)]
    settings = broker_settings(**SCHEDULE)
    async with stack(settings) as s:
        await park_in_tier(s.bus, "1h", ids, due_in_ms=3_600_000)
        await walk_until_it_dies(s, ids, close)
        moved, kept = await where_they_are(s)
    twice = assert_nothing_lost(ids, moved, kept)
    assert moved and kept  # it did die in the middle
    assert twice, "the messages confirmed but not acked must be back in the tier too"


async def test_a_flusher_killed_with_sigkill_mid_walk_loses_nothing(broker_settings, tmp_path):
    ids = [f"K{n:03d}" for n in range(300)]
    settings = broker_settings(**SCHEDULE)
    targets = tmp_path / "ids"
    targets.write_text("\n".join(ids))
    async with stack(settings) as s:
        await park_in_tier(s.bus, "1h", ids, due_in_ms=3_600_000)
        url, deliver = settings.broker.url, s.topology.queue_name(Stage.DELIVER)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.audit.flush_child",
            settings.broker.namespace, "1h", str(targets),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_until(lambda: _at_least(url, deliver, 80), 60, "the walk to be under way")
        finally:
            os.kill(child.pid, signal.SIGKILL)
            output, _ = await child.communicate()
        assert b"done" not in output, "killed too late: the walk had finished"
        await wait_until(all_back(s, len(ids)), 15, "the unacked messages to return")
        moved, kept = await where_they_are(s)
    assert_nothing_lost(ids, moved, kept)
    assert moved and kept


async def _at_least(url: str, queue: str, count: int) -> bool:
    return await depth(url, queue) >= count
