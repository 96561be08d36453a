"""The audit index on both backends (SQLite, PostgreSQL): idempotent, order-independent
writes, folded states, retention, the schema version check and concurrent writers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.audit.fold import time_order
from postline.audit.index import Index, IndexSchemaError, Query, open_index
from postline.audit.index.schema import SCHEMA_VERSION
from postline.audit.settings import AuditSettings
from postline.models import Event, EventKind, Peer
from postline.reply import reply
from tests.integration.audit.conftest import create_database, drop_database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
OK = reply(250, "2.0.0", "Ok: queued as 4QX")
UNKNOWN = reply(550, "5.1.1", "User unknown")


def journey(message_id: str, at: datetime = T0) -> list[Event]:
    """Received for two recipients, one deferred then delivered, one bounced, a transcript."""

    def make(kind: EventKind, seconds: int, **fields: Any) -> Event:
        when = at + timedelta(seconds=seconds)
        return Event(kind=kind, service="test", message_id=message_id, at=when,
                     mail_from="Mary@Company.test", **fields)  # fmt: skip

    mx = Peer(name="mx.partner.test", ip="192.0.2.1", port=25)
    return [
        make(EventKind.RECEIVED, 0, rcpt_to=("john@partner.test", "ann@other.test"), size=10,
             header_message_id=f"<{message_id}@company.test>", subject="report"),
        make(EventKind.FILTERED, 1, rcpt_to=("john@partner.test", "ann@other.test")),
        make(EventKind.DEFERRED, 2, recipient="john@partner.test", attempt=1, mx=mx,
             reply=reply(451, "4.7.1", "Greylisted"), next_attempt_at=at + timedelta(minutes=5)),
        make(EventKind.BOUNCED, 2, recipient="ann@other.test", attempt=1, reply=UNKNOWN),
        make(EventKind.CONVERSATION, 3, rcpt_to=("john@partner.test",), mx=mx,
             transcript=["<- 220 mx", "-> EHLO relay", "<- 250 ok"]),
        make(EventKind.DELIVERED, 300, recipient="john@partner.test", attempt=2, mx=mx, reply=OK),
        make(EventKind.DSN_SENT, 301, rcpt_to=("ann@other.test",)),
    ]  # fmt: skip


async def everything(index: Index) -> list[Any]:
    """What the index shows: every record (events included) and what each filter finds."""
    page = await index.search(Query(limit=500))
    found = []
    for query in (
        Query(rcpt="ann@other.test"),
        Query(state="bounced"),
        Query(reply="queued as"),
        Query(sender="mary@company.test", domain="partner.test"),
    ):
        found.append([m.message_id for m in (await index.search(query)).messages])
    return [page.messages, page.next_cursor, found]


async def test_the_same_events_written_again_leave_the_index_unchanged(open_fresh_index) -> None:
    index = await open_fresh_index()
    events = journey("M1") + journey("M2", T0 + timedelta(hours=1))
    assert await index.write(events) == len(events)
    before = await everything(index)
    assert await index.write(events) == 0
    assert await index.write(list(reversed(events))[:5]) == 0
    for one in events:
        assert await index.write([one, one]) == 0
    assert await everything(index) == before


async def test_events_in_any_order_and_batching_give_the_same_index(open_fresh_index) -> None:
    events = journey("M1") + journey("M2", T0 + timedelta(hours=1))
    in_order = await open_fresh_index()
    assert await in_order.write(events) == len(events)
    shuffled = await open_fresh_index()
    mixed = random.Random(9).sample(events, len(events))
    assert await shuffled.write(mixed[:3]) == 3
    for one in mixed[3:]:
        assert await shuffled.write([one]) == 1
    assert await everything(shuffled) == await everything(in_order)


async def test_a_message_is_folded_into_states_and_keeps_every_event(open_fresh_index) -> None:
    index = await open_fresh_index()
    events = journey("M1")
    await index.write(events[:3])  # received, filtered, john deferred
    record = await index.message("M1")
    assert record is not None
    assert (record.state, [r.state for r in record.recipients]) == (
        "deferred",
        ["deferred", "queued"],
    )
    await index.write(events[3:])
    record = await index.message("M1")
    assert record is not None
    assert (record.state, record.partly_delivered) == ("bounced", True)
    john, ann = record.recipients
    assert (john.address, john.state, john.reply, john.attempts) == (
        "john@partner.test",
        "delivered",
        OK,
        2,
    )
    assert (john.mx, john.next_attempt_at) == ("mx.partner.test[192.0.2.1]:25", None)
    assert (ann.state, ann.reply) == ("bounced", UNKNOWN)
    assert record.events == sorted(events, key=time_order)
    assert record.events[4].transcript == ["<- 220 mx", "-> EHLO relay", "<- 250 ok"]
    assert (record.mail_from, record.received_at, record.subject) == (
        "Mary@Company.test",
        T0,
        "report",
    )
    assert await index.message("nothing-like-it") is None


async def test_events_before_their_received_event_still_make_a_record(open_fresh_index) -> None:
    index = await open_fresh_index()
    events = journey("M1")
    await index.write([events[5]])  # delivered, long before the received event comes
    record = await index.message("M1")
    assert record is not None and record.received_at is None and record.state == "delivered"
    await index.write(events[:1])
    record = await index.message("M1")
    assert record is not None and record.received_at == T0 and record.state == "queued"


async def test_client_text_with_nul_and_markup_is_stored_and_read_back_unchanged(
    open_fresh_index,
) -> None:
    index = await open_fresh_index()
    nasty = 'hi\x00there <script>"\u2028 é'
    received = Event(kind=EventKind.RECEIVED, service="test", message_id="M1", at=T0,
                     helo=nasty, subject=nasty, rcpt_to=(f"a{nasty}@x.test",),
                     mail_from=nasty)  # fmt: skip
    assert await index.write([received]) == 1
    record = await index.message("M1")
    assert record is not None and (record.helo, record.subject) == (nasty, nasty)
    found = await index.search(Query(rcpt=f"A{nasty}@X.test"))
    assert [m.message_id for m in found.messages] == ["M1"]


async def test_purge_forgets_messages_whose_last_event_is_older(open_fresh_index) -> None:
    index = await open_fresh_index()
    old, recent = journey("OLD", T0 - timedelta(days=40)), journey("NEW", T0 - timedelta(days=1))
    revived = journey("REVIVED", T0 - timedelta(days=40))
    revived.append(Event(kind=EventKind.OPERATOR, service="test", message_id="REVIVED", at=T0,
                         action="retry"))  # fmt: skip
    await index.write(old + recent + revived)
    assert await index.purge(T0 - timedelta(days=30)) == 1
    assert await index.message("OLD") is None
    assert await index.message("NEW") is not None and await index.message("REVIVED") is not None
    assert (await index.search(Query(rcpt="ann@other.test"))).messages[-1].message_id == "REVIVED"
    assert [m.message_id for m in (await index.search(Query())).messages] == ["NEW", "REVIVED"]
    assert await index.write(old[:1]) == 1  # purged ids are new again: not a duplicate
    assert await index.purge(T0 - timedelta(days=30)) == 1


async def test_opening_again_keeps_the_data_and_a_newer_schema_refuses_to_open(
    index_section: Callable[..., AuditSettings],
) -> None:
    section = index_section()
    first = open_index(section)
    await first.open()
    await first.write(journey("M1"))
    await first.close()
    again = open_index(section)
    await again.open()
    assert await again.message("M1") is not None
    await again.write([Event(kind=EventKind.RECEIVED, service="t", message_id="x")])  # opened
    await _set_version(again, SCHEMA_VERSION + 1)
    await again.close()
    newer = open_index(section)
    with pytest.raises(IndexSchemaError) as raised:
        await newer.open()
    await newer.close()
    said = str(raised.value)
    assert (
        f"schema version {SCHEMA_VERSION + 1}, newer than this audit knows ({SCHEMA_VERSION})"
        in said
    )
    assert "\n" not in said


async def _set_version(index: Any, version: int) -> None:
    def bump(cursor: Any) -> None:
        sql = "UPDATE postline_meta SET value = %s WHERE key = 'schema_version'"
        cursor.execute(index._sql(sql), (str(version),))

    await index._writer.run(bump, write=True)


async def test_two_writers_sharing_one_postgresql_index_fold_every_event(tmp_path) -> None:
    """Two audit replicas: each gets half of every message's events, at the same time."""
    url = create_database()
    section = AuditSettings(trail_dir=tmp_path, database_url=url, api_listen=None)
    one, two = open_index(section), open_index(section)
    await asyncio.gather(one.open(), two.open())  # and both create the schema at once
    try:
        events = [e for n in range(60) for e in journey(f"M{n}", T0 + timedelta(minutes=n))]
        halves = events[0::2], events[1::2]
        batches = [[half[i : i + 2] for i in range(0, len(half), 2)] for half in halves]
        counts = await asyncio.gather(
            *(_write_all(index, b) for index, b in zip((one, two), batches, strict=True))
        )
        assert sum(counts) == len(events)
        page = await one.search(Query(limit=500))
        assert {(m.state, m.partly_delivered, len(m.events)) for m in page.messages} == {
            ("bounced", True, len(journey("x")))
        }
        by_state = await one.search(Query(state="bounced", limit=500))  # the folded search rows
        assert len(by_state.messages) == len(page.messages) == 60
    finally:
        await one.close()
        await two.close()
        drop_database(url)


async def _write_all(index: Index, batches: list[list[Event]]) -> int:
    return sum([await index.write(batch) for batch in batches])
