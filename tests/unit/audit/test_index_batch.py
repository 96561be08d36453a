"""The group-committing index writer (postline.audit.index.batch) over an index in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import pytest

from postline.audit.index import IndexUnavailable, Page, Query
from postline.audit.index import batch as batch_module
from postline.audit.index.batch import IndexWriter
from postline.audit.views import MessageRecord
from postline.models import Event, EventKind
from tests.support.broker import wait_until


class RecordingIndex:
    """Keeps each transaction's events; fails as told."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.poison: set[str] = set()
        self.down = False

    async def write(self, events: Sequence[Event]) -> int:
        await asyncio.sleep(0)
        if self.down:
            raise IndexUnavailable("database is locked")
        if any(event.message_id in self.poison for event in events):
            raise ValueError("this event cannot be stored")
        self.transactions.append([event.message_id for event in events])
        return len(events)

    async def open(self) -> None: ...
    async def search(self, query: Query) -> Page: return Page([])  # fmt: skip

    async def message(self, message_id: str) -> MessageRecord | None: return None  # fmt: skip

    async def purge(self, before: datetime) -> int: return 0  # fmt: skip

    async def close(self) -> None: ...


def events(count: int) -> list[Event]:
    return [Event(kind=EventKind.RECEIVED, service="t", message_id=f"M{n}") for n in range(count)]


def committed(index: RecordingIndex) -> list[str]:
    return [message_id for transaction in index.transactions for message_id in transaction]


@pytest.fixture
async def writer() -> AsyncIterator[tuple[IndexWriter, RecordingIndex]]:
    index = RecordingIndex()
    made = IndexWriter(index, max_batch=100)
    made.start()
    yield made, index
    await made.stop()


async def test_events_of_concurrent_handlers_share_transactions(writer) -> None:
    made, index = writer
    await asyncio.gather(*(made.write(event) for event in events(250)))
    assert sorted(committed(index)) == sorted(f"M{n}" for n in range(250))
    assert len(index.transactions) <= 4, [len(t) for t in index.transactions]
    assert max(len(t) for t in index.transactions) == 100  # max_batch per transaction


async def test_an_event_the_index_refuses_fails_alone(writer) -> None:
    made, index = writer
    index.poison = {"M3"}
    results = await asyncio.gather(*(made.write(e) for e in events(6)), return_exceptions=True)
    failed = [n for n, result in enumerate(results) if result is not None]
    assert failed == [3] and isinstance(results[3], ValueError)
    assert sorted(committed(index)) == ["M0", "M1", "M2", "M4", "M5"]


async def test_while_the_index_is_unavailable_writes_wait_and_healthy_is_false(
    writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "FIRST_BACKOFF", 0.01)
    made, index = writer
    index.down = True
    waiting = asyncio.ensure_future(made.write(events(1)[0]))
    await wait_until(lambda: not made.healthy, 5, "the writer to turn unhealthy")
    assert not waiting.done() and index.transactions == []
    index.down = False
    await asyncio.wait_for(waiting, 5)
    assert made.healthy and index.transactions == [["M0"]]
