"""An operator delete is durable in both trails before ``write`` returns, and only once."""

from __future__ import annotations

import json
from pathlib import Path

from postline.audit.lines import Trail
from postline.audit.writer import TrailWriter
from postline.models import Event, EventKind


def lines(directory: Path, trail: Trail) -> list[dict[str, object]]:
    path = directory / trail.value
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_delete_is_written_to_the_queue_and_failure_trails_and_a_redelivery_adds_nothing(
    tmp_path: Path,
) -> None:
    writer = TrailWriter(tmp_path, rotate_size=10**6, rotate_keep=2, dedupe_window=100)
    await writer.open()
    try:
        delete = Event(kind=EventKind.OPERATOR, service="delivery", message_id="M1",
                       action="delete", actor="ops", reason="mistake",
                       rcpt_to=("a@x.test", "b@x.test"))  # fmt: skip
        assert await writer.write(delete)
        assert not await writer.write(delete)  # redelivered: recognised by its id
    finally:
        await writer.close()
    assert [line["action"] for line in lines(tmp_path, Trail.QUEUE)] == ["delete"]
    failures = lines(tmp_path, Trail.FAILURE)
    assert [(f["recipient"], f["reason"]) for f in failures] == [
        ("a@x.test", "deleted by operator: mistake"),
        ("b@x.test", "deleted by operator: mistake"),
    ]
