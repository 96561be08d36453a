"""`postline audit` as a child process: killed with SIGKILL mid-stream (mid-batch) and
restarted, no event is lost from the trails and the index (either backend) holds every
event exactly once; an index with a newer schema stops it at start with one line."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import tomli_w

from postline.app.settings import Settings, load_settings, topology_for
from postline.audit.index import Query, open_index
from postline.audit.index.schema import SCHEMA_VERSION
from postline.audit.lines import Trail
from postline.bus import Bus
from postline.models import Event, EventKind
from postline.topology import Stage
from tests.integration.audit.conftest import create_database, drop_database
from tests.support.broker import queue_depth, wait_until
from tests.support.net import free_port
from tests.support.relay import child_env, postline_argv

pytestmark = pytest.mark.integration


class AuditProcess:
    """``python -m postline.app --config FILE audit`` as a child process."""

    def __init__(self, settings: Settings, workdir: Path, database_url: str = "") -> None:
        self.trail = workdir / "trails" / Trail.QUEUE.value
        config = {
            "broker": {"url": settings.broker.url, "namespace": settings.broker.namespace},
            "audit": {
                "trail_dir": str(workdir / "trails"),
                "metrics_listen": f"127.0.0.1:{free_port()}",
                "api_listen": f"127.0.0.1:{free_port()}",
                "concurrency": 8,
                "database_url": database_url,
            },
        }
        self.config = workdir / "postline.toml"
        self.config.write_text(tomli_w.dumps(config))
        self.log = workdir / "audit.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                postline_argv(self.config, "audit"),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        return self.process.returncode

    def event_ids(self) -> list[str]:
        if not self.trail.exists():
            return []
        return [json.loads(line)["event_id"] for line in self.trail.read_text().splitlines()]

    def exit_code(self, within: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            return None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def audit_process(
    broker_settings: Callable[..., Settings], tmp_path: Path, backend: str
) -> Iterator[AuditProcess]:
    database = create_database() if backend == "postgresql" else ""
    process = AuditProcess(broker_settings(), tmp_path, database)
    yield process
    process.kill()
    if database:
        drop_database(database)


async def index_contents(process: AuditProcess) -> list[tuple[str, list[str]]]:
    """(message id, its event ids) of every message in the process's index."""
    index = open_index(load_settings(process.config).audit)
    await index.open()
    try:
        page = await index.search(Query(limit=500))
        return [(m.message_id, [e.event_id for e in m.events]) for m in page.messages]
    finally:
        await index.close()


async def test_sigkill_mid_batch_loses_no_event_and_the_index_holds_each_exactly_once(
    audit_process: AuditProcess,
) -> None:
    settings = broker_settings_of(audit_process)
    probe = Bus(settings.broker, topology_for(settings), name="probe", on_fatal=print)
    await probe.start()
    try:
        assert await probe.wait_connected(10)
        events = [
            Event(kind=EventKind.RECEIVED, service="test", message_id=f"M{n}") for n in range(400)
        ]
        await probe.publish_events(events)
        audit_process.start()
        await wait_until(lambda: len(audit_process.event_ids()) >= 20, 30, "the first lines")
        audit_process.kill()
        before = len(audit_process.event_ids())
        audit_process.start()
        queue = topology_for(settings).queue_name(Stage.EVENTS)
        await wait_until(lambda: len(set(audit_process.event_ids())) == 400, 60, "every event")
        await wait_until(lambda: _empty(settings.broker.url, queue), 10, "the events queue")
        assert await asyncio.to_thread(audit_process.stop) == 0
    finally:
        await probe.close()
    ids = audit_process.event_ids()
    assert set(ids) == {e.event_id for e in events}
    assert before < 400, "killed too late to test anything"
    assert len(ids) - 400 <= 8, "more duplicates than events in flight (concurrency 8)"
    indexed = await index_contents(audit_process)
    assert sorted(indexed) == sorted((e.message_id, [e.event_id]) for e in events)


async def test_an_index_with_a_newer_schema_stops_audit_at_start_with_one_line(
    audit_process: AuditProcess,
) -> None:
    index = open_index(load_settings(audit_process.config).audit)
    await index.open()
    await index.close()
    _set_schema_version(audit_process, SCHEMA_VERSION + 1)
    audit_process.start()
    assert await asyncio.to_thread(audit_process.exit_code, 30) == 1
    [line] = [
        json.loads(line)["msg"]
        for line in audit_process.logs().splitlines()
        if "schema version" in line
    ]
    assert line.startswith("could not start: the audit index (")
    assert f"has schema version {SCHEMA_VERSION + 1}, newer than this audit knows" in line


def _set_schema_version(process: AuditProcess, version: int) -> None:
    section = load_settings(process.config).audit
    sql = f"UPDATE postline_meta SET value = '{version}' WHERE key = 'schema_version'"
    if section.database_url:
        with psycopg.connect(section.database_url, autocommit=True) as connection:
            connection.execute(sql)
        return
    with sqlite3.connect(section.trail_dir / "index.sqlite3") as connection:
        connection.execute(sql)


def broker_settings_of(process: AuditProcess) -> Settings:
    return load_settings(process.config)


async def _empty(url: str, queue: str) -> bool:
    return await queue_depth(url, queue) == 0
