"""A flusher in a process of its own, for the kill -9 test (``test_flush_crash``).

``python -m tests.integration.audit.flush_child NAMESPACE TIER IDS_FILE`` walks
retry tier ``TIER`` of ``NAMESPACE`` once, retrying every id listed in
``IDS_FILE``, ``PAUSE`` seconds after each confirmed publish (so the parent can
kill it mid-walk), ``WINDOW`` messages in flight.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from postline.audit.flushplan import Request, SourceKind, sources
from postline.bus import Bus
from tests.integration.audit.flush_support import SCHEDULE, make_flusher, stack
from tests.support.broker import make_settings

PAUSE = 0.01
WINDOW = 8


class SlowPublisher:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await self.bus.publish(*args, **kwargs)
        await asyncio.sleep(PAUSE)


async def main(namespace: str, tier: str, targets: frozenset[str]) -> None:
    settings = make_settings(namespace, **SCHEDULE)
    async with stack(settings) as s:
        flusher = make_flusher(s.bus, s.state, SlowPublisher(s.bus), window=WINDOW)
        [source] = [x for x in sources(s.topology, {SourceKind.TIER}) if x.queue.endswith(tier)]
        connection = await s.bus.open_connection("flush")
        print("walking", flush=True)
        await flusher.flush(connection, source, [Request("RK", "retry", targets)])
        print("done", flush=True)


if __name__ == "__main__":
    namespace, tier, ids_file = sys.argv[1:4]
    asyncio.run(main(namespace, tier, frozenset(Path(ids_file).read_text().split())))
