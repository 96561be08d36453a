"""``SqlIndex``: the ``Index`` over one database, the same SQL for SQLite and PostgreSQL.

Two DB-API connections, each used only from its own worker thread (``_Line``):
one writes (``write``, ``purge``, ``open``), one reads (``search``,
``message``), so a slow search never holds up a commit and the event loop
never waits on the database. Every call is one transaction.

``write(events)``: locks the messages (PostgreSQL: advisory locks, so replicas
sharing the index serialise per message; SQLite: ``BEGIN IMMEDIATE``), keeps
only events whose ``event_id`` is not stored yet, inserts them, and folds every
message they touch again from all of its stored events into its search rows.
Writing the same events again therefore changes nothing, and the order events
arrive in does not matter. ``purge(before)`` deletes, 500 messages per
transaction, every message whose last event is older than ``before`` (checked
again under the lock, so a message that just got an event stays).

An error the backend calls "unavailable" (connection lost, database locked,
disk full) drops the connection (the next call reconnects) and is raised as
``IndexUnavailable``; any other error rolls the transaction back and is raised
as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from postline.audit.index import IndexUnavailable, Page, Query
from postline.audit.index.backends import Backend
from postline.audit.index.records import build_record
from postline.audit.index.rows import event_of, event_row, summary_rows, to_us
from postline.audit.index.schema import migrate
from postline.audit.index.search import limit_of, make_cursor, page_sql
from postline.audit.views import MessageRecord
from postline.models import Event, utcnow

T = TypeVar("T")
CHUNK = 500  # ids per IN (...) list, and messages per purge transaction
SCHEMA_LOCK = "\x00postline-schema"

_INSERT_EVENT = (
    "INSERT INTO postline_events (event_id, message_id, at_us, kind, body) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"
)
_UPSERT_MESSAGE = (
    "INSERT INTO postline_messages (message_id, state, partly, mail_from, header_id, sort_at,"
    " received_at, last_at, reply) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (message_id) DO UPDATE SET state = excluded.state,"
    " partly = excluded.partly, mail_from = excluded.mail_from,"
    " header_id = excluded.header_id, sort_at = excluded.sort_at,"
    " received_at = excluded.received_at, last_at = excluded.last_at, reply = excluded.reply"
)
_INSERT_RECIPIENT = (
    "INSERT INTO postline_recipients (message_id, address, domain, state, reply)"
    " VALUES (%s, %s, %s, %s, %s)"
)
_STATEFUL = (  # conversations carry no state: their bodies (transcripts) are not read
    "SELECT message_id, event_id, at_us, CASE WHEN kind = 'conversation' THEN NULL"
    " ELSE body END FROM postline_events WHERE message_id IN ({})"
)
_BODIES = (
    "SELECT message_id, body FROM postline_events WHERE message_id IN ({}) ORDER BY at_us, event_id"
)


class SqlIndex:
    """The audit index on ``backend`` (module docstring)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._writer = _Line(backend, "write")
        self._reader = _Line(backend, "read")

    @property
    def where(self) -> str:
        return self.backend.where

    async def open(self) -> None:
        await self._writer.run(self._migrate, write=True)

    async def write(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        return await self._writer.run(lambda cursor: self._write(cursor, events), write=True)

    async def search(self, query: Query) -> Page:
        now = utcnow()
        return await self._reader.run(lambda cursor: self._search(cursor, query, now))

    async def message(self, message_id: str) -> MessageRecord | None:
        records = await self._reader.run(lambda cursor: self._records(cursor, [message_id]))
        return records.get(message_id)

    async def purge(self, before: datetime) -> int:
        total, cutoff = 0, to_us(before)
        while True:
            purged, looked = await self._writer.run(lambda c: self._purge(c, cutoff), write=True)
            total += purged
            if looked < CHUNK:
                return total

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()

    # Work done in the worker threads, inside one transaction each.

    def _sql(self, text: str) -> str:
        return text if self.backend.placeholder == "%s" else text.replace("%s", "?")

    def _lock(self, cursor: Any, message_ids: Sequence[str]) -> None:
        if self.backend.lock is not None:
            self.backend.lock(cursor, message_ids)

    def _migrate(self, cursor: Any) -> None:
        self._lock(cursor, [SCHEMA_LOCK])
        migrate(cursor, self.backend.placeholder, self.backend.where)

    def _write(self, cursor: Any, events: Sequence[Event]) -> int:
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event.event_id, event)
        self._lock(cursor, sorted({event.message_id for event in unique.values()}))
        stored: set[str] = set()
        for ids in _chunks(list(unique)):
            sql = f"SELECT event_id FROM postline_events WHERE event_id IN ({_marks(ids)})"
            cursor.execute(self._sql(sql), ids)
            stored.update(row[0] for row in cursor.fetchall())
        new = {key: event for key, event in unique.items() if key not in stored}
        if new:
            cursor.executemany(self._sql(_INSERT_EVENT), [event_row(e) for e in new.values()])
            self._refold(cursor, sorted({event.message_id for event in new.values()}), new)
        return len(new)

    def _refold(self, cursor: Any, message_ids: list[str], known: dict[str, Event]) -> None:
        for ids in _chunks(message_ids):
            cursor.execute(self._sql(_STATEFUL.format(_marks(ids))), ids)
            events: dict[str, list[Event]] = defaultdict(list)
            times: dict[str, list[int]] = defaultdict(list)
            for message_id, event_id, at_us, body in cursor.fetchall():
                times[message_id].append(at_us)
                if body is not None:
                    events[message_id].append(known.get(event_id) or event_of(body))
            messages, recipients = [], []
            for message_id in ids:
                row, rows = summary_rows(
                    message_id, events[message_id], min(times[message_id]), max(times[message_id])
                )
                messages.append(row)
                recipients.extend(rows)
            cursor.executemany(self._sql(_UPSERT_MESSAGE), messages)
            sql = f"DELETE FROM postline_recipients WHERE message_id IN ({_marks(ids)})"
            cursor.execute(self._sql(sql), ids)
            if recipients:
                cursor.executemany(self._sql(_INSERT_RECIPIENT), recipients)

    def _search(self, cursor: Any, query: Query, now: datetime) -> Page:
        sql, params = page_sql(query, now)
        cursor.execute(self._sql(sql), params)
        rows = cursor.fetchall()
        page = rows[: limit_of(query)]
        records = self._records(cursor, [row[0] for row in page])
        found = [records[row[0]] for row in page if row[0] in records]
        more = len(rows) > len(page)
        return Page(found, make_cursor(page[-1][1], page[-1][0]) if more else None)

    def _records(self, cursor: Any, message_ids: list[str]) -> dict[str, MessageRecord]:
        events: dict[str, list[Event]] = defaultdict(list)
        for ids in _chunks(message_ids):
            cursor.execute(self._sql(_BODIES.format(_marks(ids))), ids)
            for message_id, body in cursor.fetchall():
                events[message_id].append(event_of(body))
        return {key: build_record(key, found) for key, found in events.items()}

    def _purge(self, cursor: Any, before_us: int) -> tuple[int, int]:
        """Delete up to ``CHUNK`` old messages: (how many were deleted, how many looked old)."""
        old = "SELECT message_id FROM postline_messages WHERE last_at < %s"
        cursor.execute(self._sql(old + " ORDER BY last_at LIMIT %s"), (before_us, CHUNK))
        ids = sorted(row[0] for row in cursor.fetchall())
        if not ids:
            return 0, 0
        self._lock(cursor, ids)
        cursor.execute(self._sql(f"{old} AND message_id IN ({_marks(ids)})"), [before_us, *ids])
        still = [row[0] for row in cursor.fetchall()]
        for table in ("postline_events", "postline_recipients", "postline_messages"):
            if still:
                sql = f"DELETE FROM {table} WHERE message_id IN ({_marks(still)})"
                cursor.execute(self._sql(sql), still)
        return len(still), len(ids)


class _Line:
    """One connection and the one thread that uses it; each ``run`` is one transaction."""

    def __init__(self, backend: Backend, role: str) -> None:
        self._backend = backend
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"audit-index-{role}")
        self._connection: Any = None

    async def run(self, work: Callable[[Any], T], *, write: bool = False) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work, write)

    def _transaction(self, work: Callable[[Any], T], write: bool) -> T:
        try:
            if self._connection is None:
                self._connection = self._backend.connect()
            cursor = self._connection.cursor()
            cursor.execute(self._backend.begin_write if write else "BEGIN")
            try:
                result = work(cursor)
            except BaseException:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return result
        except Exception as error:
            if not self._backend.unavailable(error):
                raise
            self._drop()
            raise IndexUnavailable(f"{self._backend.where}: {_one_line(error)}") from error

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop)
        self._executor.shutdown(wait=True)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(items: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(items))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
