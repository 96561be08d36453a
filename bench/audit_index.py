"""Events per second into the audit index, the way the audit service writes them.

``--concurrency`` handlers (the service's ``[audit] concurrency``: events in
flight) each hand one event at a time to the group-committing ``IndexWriter``
and wait for its commit, as the service's handlers do before they ack. The
events are message journeys of four events each (received, filtered, a
conversation with a 6-line transcript, delivered), with ``--messages``
messages; every event is new. SQLite is a fresh file in a temporary
directory; PostgreSQL a fresh database on 127.0.0.1:5432 (dropped after).

    .venv/bin/python bench/audit_index.py --backend both --messages 5000 --concurrency 256
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from postline.audit.index import Index, Query, open_index
from postline.audit.index.batch import IndexWriter
from postline.audit.settings import AuditSettings
from postline.models import Event, EventKind, Peer, TlsInfo, new_message_id
from postline.reply import reply

SERVER = "postgresql://127.0.0.1:5432"


def journey(n: int) -> list[Event]:
    mid = new_message_id() + f"{n:06}"
    rcpt = f"user{n}@partner{n % 50}.test"
    mx = Peer(name=f"mx.partner{n % 50}.test", ip="192.0.2.1", port=25)
    tls = TlsInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", verified=False)
    common = {"service": "bench", "message_id": mid, "mail_from": "app@company.test"}
    return [
        Event(kind=EventKind.RECEIVED, rcpt_to=(rcpt,), size=4096, client_ip="10.0.0.1",
              helo="app.company.test", header_message_id=f"<{mid}@company.test>",
              subject=f"Invoice {n}", tls=tls, **common),
        Event(kind=EventKind.FILTERED, rcpt_to=(rcpt,), reason="filters: headers", **common),
        Event(kind=EventKind.CONVERSATION, rcpt_to=(rcpt,), mx=mx, tls=tls, session_id="s1",
              transcript=["<- 220 mx ESMTP", "-> EHLO relay.test", "<- 250 ok",
                          "-> MAIL FROM:<app@company.test>", "<- 250 ok", "<- 250 2.0.0 queued"],
              **common),
        Event(kind=EventKind.DELIVERED, recipient=rcpt, attempt=1, mx=mx, tls=tls,
              reply=reply(250, "2.0.0", f"Ok: queued as Q{n}"), queued_seconds=0.4, **common),
    ]  # fmt: skip


async def run(section: AuditSettings, messages: int, concurrency: int) -> float:
    index = open_index(section)
    await index.open()
    writer = IndexWriter(index)
    writer.start()
    events = [event for n in range(messages) for event in journey(n)]
    queue: asyncio.Queue[Event] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def handler() -> None:
        while not queue.empty():
            await writer.write(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(handler() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await check(index, messages)
    await writer.stop()
    await index.close()
    return len(events) / elapsed


async def check(index: Index, messages: int) -> None:
    total, cursor = 0, None
    while True:
        page = await index.search(Query(limit=500, cursor=cursor, state="delivered"))
        total += len(page.messages)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert total == messages, f"{total} delivered messages in the index, expected {messages}"


def postgres_database() -> str:
    name = f"postline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop(name: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        with tempfile.TemporaryDirectory() as workdir:
            database = postgres_database() if backend == "postgresql" else None
            url = f"{SERVER}/{database}" if database else ""
            section = AuditSettings(trail_dir=Path(workdir), database_url=url, api_listen=None)
            try:
                rate = asyncio.run(run(section, args.messages, args.concurrency))
            finally:
                if database:
                    drop(database)
        print(f"{backend}: {rate:,.0f} events/s ({args.messages * 4} events, "
              f"concurrency {args.concurrency})")  # fmt: skip


if __name__ == "__main__":
    main()
