"""`postline audit` killed with SIGKILL mid-stream and restarted: no event is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from postline.app.settings import Settings, topology_for
from postline.audit.lines import Trail
from postline.bus import Bus
from postline.models import Event, EventKind
from postline.topology import Stage
from tests.support.broker import queue_depth, wait_until
from tests.support.net import free_port
from tests.support.relay import child_env, postline_argv

pytestmark = pytest.mark.integration


class AuditProcess:
    """``python -m postline.app --config FILE audit`` as a child process."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.trail = workdir / "trails" / Trail.QUEUE.value
        config = {
            "broker": {"url": settings.broker.url, "namespace": settings.broker.namespace},
            "audit": {
                "trail_dir": str(workdir / "trails"),
                "metrics_listen": f"127.0.0.1:{free_port()}",
                "concurrency": 8,
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


@pytest.fixture
def audit_process(
    broker_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[AuditProcess]:
    process = AuditProcess(broker_settings(), tmp_path)
    yield process
    process.kill()


async def test_sigkill_mid_stream_loses_no_event_and_duplicates_at_most_the_unacked(
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


def broker_settings_of(process: AuditProcess) -> Settings:
    from postline.app.settings import load_settings

    return load_settings(process.config)


async def _empty(url: str, queue: str) -> bool:
    return await queue_depth(url, queue) == 0
