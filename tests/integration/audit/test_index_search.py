"""Searching the audit index on both backends: every filter, newest first, cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.audit.index import Index, Query
from postline.models import Event, EventKind, utcnow
from postline.reply import reply

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def message(
    mid: str, minutes: int, sender: str, rcpts: tuple[str, ...], **last: Any
) -> list[Event]:
    """A received event ``minutes`` after T0 and, when ``last`` is given, one more event."""
    at = T0 + timedelta(minutes=minutes)
    events = [
        Event(kind=EventKind.RECEIVED, service="t", message_id=mid, at=at, mail_from=sender,
              rcpt_to=rcpts, header_message_id=f"<{mid.lower()}.x@Company.Test>"),
    ]  # fmt: skip
    if last:
        events.append(Event(service="t", message_id=mid, at=at + timedelta(seconds=5), **last))
    return events


CORPUS = [
    *message("A1", 0, "mary@company.test", ("john@partner.test",),
             kind=EventKind.DELIVERED, recipient="john@partner.test",
             reply=reply(250, "2.0.0", "Ok: queued as 4QX_1")),
    *message("A2", 10, "Mary@Company.TEST", ("ann@other.test", "john@partner.test"),
             kind=EventKind.BOUNCED, recipient="ann@other.test",
             reply=reply(550, "5.1.1", "User 100% unknown")),
    *message("A3", 20, "bob@company.test", ("<Ann@Other.Test>",),
             kind=EventKind.DEFERRED, recipient="<Ann@Other.Test>",
             reply=reply(451, "4.7.1", "Greylisted")),
    *message("A4", 30, "bob@company.test", ("zed@partner.test",)),
]  # fmt: skip
QUERIES = [
    (Query(rcpt="john@partner.test"), ["A2", "A1"]),
    (Query(rcpt="<ANN@other.test>"), ["A3", "A2"]),
    (Query(sender="mary@company.test"), ["A2", "A1"]),
    (Query(sender="<BOB@company.test>", rcpt="zed@partner.test"), ["A4"]),
    (Query(message_id="A3"), ["A3"]),
    (Query(message_id="<a1.x@company.test>"), ["A1"]),
    (Query(message_id="A2.X@COMPANY.TEST"), ["A2"]),
    (Query(state="deferred"), ["A3"]),
    (Query(state="queued"), ["A4", "A2"]),  # john of A2 is still queued
    (Query(state="delivered"), ["A1"]),
    (Query(since=T0 + timedelta(minutes=10)), ["A4", "A3", "A2"]),
    (Query(until=T0 + timedelta(minutes=10)), ["A2", "A1"]),
    (Query(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=25)), ["A3", "A2"]),
    (Query(domain="PARTNER.test"), ["A4", "A2", "A1"]),
    (Query(domain="other.test", state="deferred"), ["A3"]),
    (Query(reply="QUEUED AS 4qx_1"), ["A1"]),
    (Query(reply="100% unknown"), ["A2"]),
    (Query(reply="_"), ["A1"]),  # LIKE wildcards are text
    (Query(reply="%"), ["A2"]),
    (Query(rcpt="nobody@partner.test"), []),
]


async def found(index: Index, query: Query) -> list[str]:
    return [record.message_id for record in (await index.search(query)).messages]


@pytest.mark.parametrize(("query", "expected"), QUERIES, ids=[repr(q[0])[6:60] for q in QUERIES])
async def test_each_filter_finds_exactly_its_messages_newest_first(
    open_fresh_index, query: Query, expected: list[str]
) -> None:
    index = await open_fresh_index()
    await index.write(CORPUS)
    assert await found(index, query) == expected


async def test_older_than_counts_back_from_now(open_fresh_index) -> None:
    index = await open_fresh_index()
    now = utcnow()
    await index.write(message("OLD", 0, "a@x.test", ("b@y.test",)))  # in 2026-03
    fresh = Event(kind=EventKind.RECEIVED, service="t", message_id="NEW", at=now,
                  rcpt_to=("b@y.test",))  # fmt: skip
    await index.write([fresh])
    assert await found(index, Query(older_than=3600)) == ["OLD"]
    assert await found(index, Query()) == ["NEW", "OLD"]


async def test_pages_follow_each_other_without_gaps_or_repeats(open_fresh_index) -> None:
    index = await open_fresh_index()
    events = [e for n in range(11) for e in message(f"P{n:02}", n % 4, "a@x.test", ("b@y.test",))]
    await index.write(events)  # several messages share a received_at: message id breaks ties
    expected = await found(index, Query(limit=100))
    pages, cursor = [], None
    while True:
        page = await index.search(Query(rcpt="b@y.test", limit=3, cursor=cursor))
        pages.append([record.message_id for record in page.messages])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # a message arriving between two pages must not shift the next one
        await index.write(message(f"Z{len(pages)}", 60, "a@x.test", ("b@y.test",)))
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [mid for page in pages for mid in page] == expected
    by_time = sorted(expected, key=lambda mid: (int(mid[1:]) % 4, mid), reverse=True)
    assert expected == by_time


async def test_a_full_last_page_has_no_next_cursor_and_limit_is_bounded(open_fresh_index) -> None:
    index = await open_fresh_index()
    await index.write([e for n in range(4) for e in message(f"Q{n}", n, "a@x.test", ("b@y.test",))])
    assert (await index.search(Query(limit=4))).next_cursor is None
    assert len((await index.search(Query(limit=0))).messages) == 1
    assert len((await index.search(Query(limit=10_000))).messages) == 4


@pytest.mark.parametrize(
    "cursor", ["not a cursor", "", "WyJ4IiwxXQ", "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMCwieCJd"]
)
async def test_a_cursor_that_is_not_ours_is_a_value_error(open_fresh_index, cursor: str) -> None:
    index = await open_fresh_index()
    await index.write(CORPUS)
    with pytest.raises(ValueError):
        await index.search(Query(cursor=cursor))
