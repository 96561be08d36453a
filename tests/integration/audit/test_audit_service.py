"""The audit service against the real RabbitMQ: events queue -> trail files, ack after fsync."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from postline.app.settings import Settings, context_for, topology_for
from postline.audit.lines import Trail
from postline.audit.main import AuditService
from postline.audit.trailfile import TrailFile
from postline.bus import Bus
from postline.lifecycle import Supervisor
from postline.models import Event, EventKind, Peer
from postline.reply import reply
from postline.topology import Stage
from tests.support.broker import queue_depth, wait_until

pytestmark = pytest.mark.integration


class Harness:
    """Starts audit services and a probe bus that publishes events; cleans up after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trail_dir = settings.audit.trail_dir
        self.probe = Bus(settings.broker, topology_for(settings), name="probe", on_fatal=print)
        self.services: list[AuditService] = []
        self.events_queue = topology_for(settings).queue_name(Stage.EVENTS)

    async def start_probe(self) -> None:
        await self.probe.start()
        assert await self.probe.wait_connected(10)

    async def start_audit(self) -> AuditService:
        service = AuditService(self.settings.audit, context_for(self.settings), Supervisor())
        await service.start()
        self.services.append(service)
        await wait_until(lambda: service.ready, 10, "the audit service to be ready")
        return service

    async def stop_audit(self, service: AuditService) -> None:
        if service in self.services:
            self.services.remove(service)
            await service.drain(5)
            await service.close()

    def lines(self, trail: Trail) -> list[dict[str, Any]]:
        path = self.trail_dir / trail.value
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    async def depth(self) -> int:
        return await queue_depth(self.settings.broker.url, self.events_queue)

    async def close(self) -> None:
        for service in list(self.services):
            await self.stop_audit(service)
        await self.probe.drain(1)
        await self.probe.close()


@pytest.fixture
async def harness_factory(
    broker_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**audit: Any) -> Harness:
        settings = broker_settings(audit={"trail_dir": str(tmp_path / "trails"), **audit})
        harness = Harness(settings)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.close()


@pytest.fixture
async def harness(harness_factory: Callable[..., Harness]) -> Harness:
    """A probe bus and one audit service, both running."""
    made = harness_factory()
    await made.start_probe()
    await made.start_audit()
    return made


def received(n: int) -> Event:
    return Event(kind=EventKind.RECEIVED, service="test", message_id=f"M{n}", mail_from="a@x.test")


async def test_published_events_appear_as_lines_in_their_trail_files(
    harness: Harness,
) -> None:
    ok = reply(250, "2.0.0", "Ok")
    events = [
        Event(
            kind=EventKind.DELIVERED,
            service="delivery",
            message_id="M1",
            mail_from="mary@company.test",
            recipient="john@partner.test",
            mx=Peer(name="mx.partner.test", ip="192.0.2.1", port=25),
            session_id="S1",
            reply=ok,
            attempt=1,
            queued_seconds=2.5,
        ),
        Event(
            kind=EventKind.BOUNCED,
            service="delivery",
            message_id="M2",
            recipient="nobody@partner.test",
            reply=reply(550, "5.1.1", "User unknown"),
            reason="recipient refused",
        ),
        Event(kind=EventKind.DEFERRED, service="delivery", message_id="M3", reason="451"),
        Event(
            kind=EventKind.CONVERSATION,
            service="delivery",
            message_id="M1",
            session_id="S1",
            transcript=["<- 220 hi", "-> QUIT"],
        ),
    ]
    await harness.probe.publish_events(events)
    await wait_until(lambda: harness.lines(Trail.CONVERSATION), 15, "the conversation line")
    await wait_until(lambda: harness.lines(Trail.QUEUE), 15, "the queue line")
    [success] = harness.lines(Trail.SUCCESS)
    assert success["recipient"] == "john@partner.test" and success["attempts"] == 1
    assert success["reply"] == {"code": 250, "enhanced": "2.0.0", "text": "Ok"}
    assert success["mx_host"] == "mx.partner.test[192.0.2.1]:25"
    assert success["session_id"] == "S1"
    [failure] = harness.lines(Trail.FAILURE)
    assert failure["kind"] == "bounced" and failure["reply"]["enhanced"] == "5.1.1"
    assert [line["message_id"] for line in harness.lines(Trail.QUEUE)] == ["M3"]
    assert harness.lines(Trail.CONVERSATION)[0]["transcript"] == ["<- 220 hi", "-> QUIT"]
    all_ids = {line["event_id"] for trail in Trail for line in harness.lines(trail)}
    assert all_ids == {e.event_id for e in events}


async def test_an_event_from_before_version_2_with_only_mx_host_is_still_written(
    harness: Harness,
) -> None:
    version_1 = {
        "version": 1,
        "event_id": "old-1",
        "kind": "delivered",
        "at": "2026-03-04T05:06:07+00:00",
        "service": "delivery",
        "message_id": "M9",
        "recipient": "john@partner.test",
        "attempt": 1,
        "mx_host": "mx.partner.test[192.0.2.1]:25",
        "reply": {"code": 250, "enhanced": "2.0.0", "text": "Ok"},
    }
    body = json.dumps(version_1).encode()
    topology = harness.probe.topology
    await harness.probe.publish(topology.work_exchange, "events", body, message_id="old-1")
    await wait_until(lambda: harness.lines(Trail.SUCCESS), 15, "the version 1 event's line")
    [line] = harness.lines(Trail.SUCCESS)
    assert (line["event_id"], line["mx_host"]) == ("old-1", "mx.partner.test[192.0.2.1]:25")
    assert await queue_depth(harness.settings.broker.url, topology.parked_queue) == 0


async def test_malformed_event_body_is_parked_and_later_events_are_still_written(
    harness: Harness,
) -> None:
    topology = harness.probe.topology
    for body in (b"not json at all", b'{"kind": "delivered"}'):
        await harness.probe.publish(topology.work_exchange, "events", body, message_id="bad")
    await harness.probe.publish_events([received(1)])
    await wait_until(lambda: harness.lines(Trail.QUEUE), 15, "the valid event's line")
    parked = topology.parked_queue
    await wait_until(
        lambda: _depth(harness.settings, parked, 2), 15, "both malformed events in parked"
    )
    assert [line["message_id"] for line in harness.lines(Trail.QUEUE)] == ["M1"]


async def test_duplicate_delivery_of_an_event_writes_one_line(
    harness: Harness,
) -> None:
    event = received(1)
    await harness.probe.publish_events([event])
    await harness.probe.publish_events([event, received(2)])
    await wait_until(lambda: len(harness.lines(Trail.QUEUE)) == 2, 15, "two lines")
    service = harness.services[0]
    await wait_until(lambda: _depth(harness.settings, harness.events_queue, 0), 10, "all taken")
    await harness.stop_audit(service)  # drained: every event taken is acked or returned
    assert await harness.depth() == 0
    assert [line["message_id"] for line in harness.lines(Trail.QUEUE)] == ["M1", "M2"]


async def test_events_are_not_acked_before_their_line_is_written(
    harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes stall; the worker dies (connection gone) before writing: every event returns."""
    harness = harness_factory()
    await harness.start_probe()
    entered, release, crashed = threading.Event(), threading.Event(), threading.Event()
    real_append = TrailFile.append

    def stalled_append(trail: TrailFile, data: bytes) -> None:
        entered.set()
        assert release.wait(20)
        if crashed.is_set():
            raise OSError(5, "the process died before this write")
        real_append(trail, data)

    monkeypatch.setattr(TrailFile, "append", stalled_append)
    first = await harness.start_audit()
    events = [received(n) for n in range(20)]
    await harness.probe.publish_events(events)
    await asyncio.to_thread(entered.wait, 15)
    await wait_until(lambda: _depth(harness.settings, harness.events_queue, 0), 10, "all taken")
    assert harness.lines(Trail.QUEUE) == []
    await first.worker.close()  # the "crash": the broker takes back every unacked event
    await wait_until(
        lambda: _depth(harness.settings, harness.events_queue, 20), 15, "events back in queue"
    )
    crashed.set()
    release.set()
    harness.services.remove(first)
    await first.writer.close()
    monkeypatch.setattr(TrailFile, "append", real_append)
    await harness.start_audit()
    await wait_until(lambda: len(harness.lines(Trail.QUEUE)) >= 20, 15, "every line")
    await wait_until(lambda: _depth(harness.settings, harness.events_queue, 0), 10, "all acked")
    ids = [line["event_id"] for line in harness.lines(Trail.QUEUE)]
    assert sorted(ids) == sorted(e.event_id for e in events)


async def test_stopping_mid_way_and_restarting_writes_every_event_exactly_once(
    harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory(concurrency=4)
    await harness.start_probe()
    real_append = TrailFile.append

    def slow_append(trail: TrailFile, data: bytes) -> None:
        threading.Event().wait(0.01)  # a slow disk, so the stop lands mid-stream
        real_append(trail, data)

    monkeypatch.setattr(TrailFile, "append", slow_append)
    events = [received(n) for n in range(150)]
    await harness.probe.publish_events(events)
    first = await harness.start_audit()
    await wait_until(lambda: len(harness.lines(Trail.QUEUE)) >= 10, 15, "some lines")
    await harness.stop_audit(first)
    written_before_restart = len(harness.lines(Trail.QUEUE))
    assert written_before_restart < len(events), "stopped too late to test a restart"
    assert await harness.depth() == len(events) - written_before_restart
    await harness.start_audit()
    await wait_until(lambda: len(harness.lines(Trail.QUEUE)) >= 150, 30, "every line")
    await wait_until(lambda: _depth(harness.settings, harness.events_queue, 0), 10, "all acked")
    ids = [line["event_id"] for line in harness.lines(Trail.QUEUE)]
    assert len(ids) == len(events)
    assert set(ids) == {e.event_id for e in events}


async def _depth(settings: Settings, queue: str, depth: int) -> bool:
    return await queue_depth(settings.broker.url, queue) == depth
