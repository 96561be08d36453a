"""The group-committing writer: durable before release, batched, independent, idempotent."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postline.audit import writer as writer_module
from postline.audit.lines import Trail
from postline.audit.trailfile import TrailFile
from postline.audit.writer import RecentIds, TrailWriter
from postline.models import Event, EventKind
from tests.support.broker import wait_until


class Disk:
    """Wraps ``TrailFile.append``: counts calls per file, can hold or fail them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.hold_file: str | None = None
        self.failures = 0
        real = TrailFile.append
        disk = self

        def append(trail: TrailFile, data: bytes) -> None:
            disk.calls[trail.path.name] = disk.calls.get(trail.path.name, 0) + 1
            if trail.path.name == disk.hold_file:
                disk.entered.set()
                assert disk.release.wait(10)
            if disk.failures:
                disk.failures -= 1
                raise OSError(28, "No space left on device")
            real(trail, data)

        monkeypatch.setattr(TrailFile, "append", append)

    def hold(self, trail: Trail) -> None:
        self.hold_file = trail.value
        self.release.clear()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[TrailWriter]:
    made = TrailWriter(tmp_path, rotate_size=10_000_000, rotate_keep=2, dedupe_window=1000)
    await made.open()
    yield made
    await made.close()


def event(kind: EventKind = EventKind.RECEIVED, event_id: str | None = None) -> Event:
    fields = {"event_id": event_id} if event_id else {}
    return Event(kind=kind, service="test", message_id="M1", **fields)


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


async def test_events_arriving_together_share_one_write_and_fsync(
    writer: TrailWriter, disk: Disk, tmp_path: Path
) -> None:
    events = [event() for _ in range(50)]
    results = await asyncio.gather(*(writer.write(e) for e in events))
    assert results == [True] * 50
    assert ids_in(tmp_path / Trail.QUEUE.value) == [e.event_id for e in events]
    assert disk.calls[Trail.QUEUE.value] <= 2


async def test_write_returns_only_after_the_line_is_on_disk(
    writer: TrailWriter, disk: Disk, tmp_path: Path
) -> None:
    disk.hold(Trail.SUCCESS)
    pending = asyncio.create_task(writer.write(event(EventKind.DELIVERED, "d1")))
    await asyncio.to_thread(disk.entered.wait, 10)
    await asyncio.sleep(0.05)
    assert not pending.done()
    assert ids_in(tmp_path / Trail.SUCCESS.value) == []
    disk.release.set()
    assert await asyncio.wait_for(pending, 10) is True
    assert ids_in(tmp_path / Trail.SUCCESS.value) == ["d1"]


async def test_a_stuck_trail_does_not_hold_back_the_others(
    writer: TrailWriter, disk: Disk, tmp_path: Path
) -> None:
    disk.hold(Trail.SUCCESS)
    stuck = asyncio.create_task(writer.write(event(EventKind.DELIVERED)))
    await asyncio.to_thread(disk.entered.wait, 10)
    assert await asyncio.wait_for(writer.write(event(EventKind.BOUNCED, "b1")), 5)
    assert ids_in(tmp_path / Trail.FAILURE.value) == ["b1"]
    assert not stuck.done()
    disk.release.set()
    await asyncio.wait_for(stuck, 10)


async def test_redelivered_event_id_is_written_once(writer: TrailWriter, tmp_path: Path) -> None:
    first = event(event_id="same")
    assert await writer.write(first) is True
    assert await writer.write(event(event_id="same")) is False
    concurrent = await asyncio.gather(
        writer.write(event(event_id="twin")), writer.write(event(event_id="twin"))
    )
    assert sorted(concurrent) == [False, True]
    assert ids_in(tmp_path / Trail.QUEUE.value) == ["same", "twin"]


async def test_failed_write_is_retried_and_marks_the_writer_unhealthy_meanwhile(
    writer: TrailWriter, disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "FIRST_BACKOFF", 0.05)
    disk.failures = 2
    task = asyncio.create_task(writer.write(event(event_id="e1")))
    await wait_until(lambda: not writer.healthy, 5, "the writer to report the failure")
    assert await asyncio.wait_for(task, 5) is True
    assert writer.healthy
    assert ids_in(tmp_path / Trail.QUEUE.value) == ["e1"]
    assert disk.calls[Trail.QUEUE.value] == 3


async def test_close_fails_waiting_writers_instead_of_leaving_them_hanging(
    tmp_path: Path, disk: Disk
) -> None:
    writer = TrailWriter(tmp_path, rotate_size=10_000, rotate_keep=1, dedupe_window=10)
    await writer.open()
    disk.hold(Trail.QUEUE)
    waiting = asyncio.create_task(writer.write(event(event_id="late")))
    await asyncio.to_thread(disk.entered.wait, 10)
    closing = asyncio.create_task(writer.close())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    disk.release.set()
    await asyncio.wait_for(closing, 5)


def test_recent_ids_forget_the_oldest_past_the_limit() -> None:
    recent = RecentIds(3)
    for item in ("a", "b", "c", "d"):
        recent.add(item)
    assert "a" not in recent and all(x in recent for x in "bcd") and len(recent) == 3
    off = RecentIds(0)
    off.add("a")
    assert "a" not in off
