"""The audit service writes the index (both backends) against the real RabbitMQ: acked only
after the commit, unready while the index cannot be written, retention in the background,
and the query API on ``api_listen``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from postline.app.settings import Settings, context_for, topology_for
from postline.audit.index import IndexUnavailable, Query, open_index
from postline.audit.index.store import SqlIndex
from postline.audit.lines import Trail
from postline.audit.main import AuditService
from postline.bus import Bus
from postline.lifecycle import Supervisor
from postline.models import Event, EventKind, utcnow
from postline.reply import reply
from postline.topology import Stage
from tests.integration.audit.conftest import create_database, drop_database
from tests.support.broker import queue_depth, wait_until
from tests.support.net import free_port

pytestmark = pytest.mark.integration


class Audit:
    """Audit services over one index and one probe bus that publishes events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.probe = Bus(settings.broker, topology_for(settings), name="probe", on_fatal=print)
        self.queue = topology_for(settings).queue_name(Stage.EVENTS)
        self.services: list[AuditService] = []

    async def start(self) -> AuditService:
        service = AuditService(self.settings.audit, context_for(self.settings), Supervisor())
        self.services.append(service)
        await service.start()
        await wait_until(lambda: service.ready, 10, "the audit service to be ready")
        return service

    async def stop(self, service: AuditService) -> None:
        """Drain and close: every event it took is then acked or back in the queue."""
        self.services.remove(service)
        await service.drain(5)
        await service.close()

    async def depth(self) -> int:
        return await queue_depth(self.settings.broker.url, self.queue)

    def queue_lines(self) -> int:
        path = self.settings.audit.trail_dir / Trail.QUEUE.value
        return len(path.read_text().splitlines()) if path.exists() else 0

    async def close(self) -> None:
        for service in self.services:
            await service.drain(5)
            await service.close()
        await self.probe.close()


@pytest.fixture
async def audit(
    broker_settings: Callable[..., Settings], tmp_path: Path, backend: str
) -> AsyncIterator[Callable[..., Any]]:
    made: list[Audit] = []
    databases: list[str] = []

    async def make(**section: Any) -> Audit:
        if backend == "postgresql":
            databases.append(create_database())
            section.setdefault("database_url", databases[-1])
        settings = broker_settings(audit={"trail_dir": str(tmp_path / "trails"), **section})
        harness = Audit(settings)
        made.append(harness)
        await harness.probe.start()
        assert await harness.probe.wait_connected(10)
        return harness

    yield make
    for harness in made:
        await harness.close()
    for url in databases:
        drop_database(url)


def received(n: int, **fields: Any) -> Event:
    return Event(kind=EventKind.RECEIVED, service="test", message_id=f"M{n}",
                 rcpt_to=("john@partner.test",), mail_from="mary@company.test",
                 **fields)  # fmt: skip


async def indexed(service: AuditService) -> list[str]:
    page = await service.index.search(Query(limit=500))
    return sorted(record.message_id for record in page.messages)


async def test_published_events_and_their_redeliveries_are_folded_into_the_index(audit) -> None:
    harness = await audit(concurrency=16)
    service = await harness.start()
    delivered = Event(kind=EventKind.DELIVERED, service="delivery", message_id="M1",
                      recipient="john@partner.test", reply=reply(250, "2.0.0", "Ok"))  # fmt: skip
    events = [received(n) for n in range(30)] + [delivered]
    await harness.probe.publish_events(events)
    await harness.probe.publish_events([*events[:10], delivered])  # redelivered
    expected = sorted(f"M{n}" for n in range(30))
    await wait_until(lambda: _indexed_is(service, expected), 20, "every message indexed")
    await wait_until(lambda: _depth_is(harness, 0), 20, "every event taken")
    await harness.stop(service)
    assert await harness.depth() == 0  # every event, redeliveries included, was acked
    index = open_index(harness.settings.audit)
    await index.open()
    try:
        record = await index.message("M1")
        assert record is not None and record.state == "delivered" and len(record.events) == 2
        assert len((await index.search(Query(limit=500))).messages) == 30
    finally:
        await index.close()


async def test_events_are_not_acked_before_their_index_transaction_commits(
    audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = await audit()
    release = asyncio.Event()
    real_write = SqlIndex.write

    async def stalled(index: SqlIndex, events: Any) -> int:
        await release.wait()
        raise IndexUnavailable("the process died before this commit")

    monkeypatch.setattr(SqlIndex, "write", stalled)
    first = await harness.start()
    events = [received(n) for n in range(20)]
    await harness.probe.publish_events(events)
    await wait_until(lambda: harness.queue_lines() == 20, 15, "every trail line")
    assert await harness.depth() == 0  # all taken, none acked
    await first.worker.close()  # the "crash": the broker takes back every unacked event
    await wait_until(lambda: _depth_is(harness, 20), 15, "every event back in the queue")
    harness.services.remove(first)
    release.set()
    await first.close()
    monkeypatch.setattr(SqlIndex, "write", real_write)
    second = await harness.start()
    expected = sorted(e.message_id for e in events)
    await wait_until(lambda: _indexed_is(second, expected), 15, "every event indexed")
    await wait_until(lambda: _depth_is(harness, 0), 15, "every event taken")
    await harness.stop(second)
    assert await harness.depth() == 0


async def test_ready_is_false_while_the_index_cannot_be_written_and_nothing_is_lost(
    audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = await audit()
    down = True
    real_write = SqlIndex.write

    async def flaky(index: SqlIndex, events: Any) -> int:
        if down:
            raise IndexUnavailable("database is locked")
        return await real_write(index, events)

    monkeypatch.setattr(SqlIndex, "write", flaky)
    service = await harness.start()
    await harness.probe.publish_events([received(n) for n in range(5)])
    await wait_until(lambda: not service.ready, 10, "audit to turn unready")
    assert await harness.depth() == 0 and await indexed(service) == []
    down = False
    await wait_until(lambda: service.ready, 10, "audit to be ready again")
    expected = [f"M{n}" for n in range(5)]
    await wait_until(lambda: _indexed_is(service, expected), 15, "every event indexed")
    await harness.stop(service)
    assert await harness.depth() == 0


async def test_retention_forgets_old_messages_in_the_background(audit) -> None:
    harness = await audit(retention="10s")
    service = await harness.start()
    old = utcnow() - timedelta(hours=1)
    await harness.probe.publish_events([received(1, at=old)])
    await wait_until(lambda: _depth_is(harness, 0), 15, "the old event taken")
    await harness.probe.publish_events([received(2)])
    await wait_until(lambda: _indexed_is(service, ["M2"]), 15, "the old message purged")
    assert service.index_writer.healthy
    assert service.retention.interval == 1.0


async def test_the_query_api_serves_the_index_on_api_listen(audit) -> None:
    port = free_port()
    harness = await audit(api_listen=f"127.0.0.1:{port}")
    service = await harness.start()
    await harness.probe.publish_events([received(7)])
    await wait_until(lambda: _indexed_is(service, ["M7"]), 15, "the event indexed")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/v1/messages?rcpt=john@partner.test"
        async with http.get(url) as response:
            assert response.status == 200
            body = await response.json()
    assert [m["message_id"] for m in body["messages"]] == ["M7"]


async def _depth_is(harness: Audit, depth: int) -> bool:
    return await harness.depth() == depth


async def _indexed_is(service: AuditService, ids: list[str]) -> bool:
    return await indexed(service) == ids
