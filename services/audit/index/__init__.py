"""The audit index: every message and recipient, their states and every event, queryable.

``open_index(section)`` gives the index ``[audit]`` configures: embedded SQLite at
``<trail_dir>/index.sqlite3`` when ``database_url`` is empty, PostgreSQL (which
several audit replicas can share) for ``postgresql://...``. Both are one
``SqlIndex`` (``store.py``) running the same SQL through a DB-API connection in
worker threads, so the event loop never waits on the database.

* ``open()``: connect, create the schema or migrate it; a schema newer than
  this code raises ``IndexSchemaError`` (one line naming both versions).
* ``write(events)``: one transaction; idempotent on ``event_id`` (an event
  written before changes nothing); returns how many were new. The messages
  they touch are folded again from all their events (``postline.audit.fold``),
  so events may arrive in any order.
* ``search(query)``: newest first (by ``received_at``, or the first event's
  time, then message id), at most ``limit`` records, and ``next_cursor``.
* ``message(id)``: one record with every event in time order, or None.
* ``purge(before)``: forget every message whose last event is older.

``IndexUnavailable`` means the database cannot be reached or written right now
(retry later); any other exception is about the events given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from postline.audit.views import MessageRecord
from postline.models import Event

if TYPE_CHECKING:
    from postline.audit.settings import AuditSettings

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Query:
    """What to look for; a field left None matches everything.

    ``rcpt``, ``sender``: addresses (case-insensitive, angle brackets optional);
    ``message_id``: a Postline id or a ``Message-ID`` header value; ``state``:
    the message's state; ``since``/``until``: bounds on ``received_at`` (or the
    first event's time); ``domain``: a recipient domain; ``reply``: a substring
    of a last reply (case-insensitive); ``older_than``: seconds before now;
    ``limit``: 1-500; ``cursor``: ``Page.next_cursor`` of the previous page.
    """

    rcpt: str | None = None
    sender: str | None = None
    message_id: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    domain: str | None = None
    reply: str | None = None
    older_than: float | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a search, newest first; ``next_cursor`` is None on the last one."""

    messages: list[MessageRecord]
    next_cursor: str | None = None


class Index(Protocol):
    """What the audit service, the API and the console use (module docstring)."""

    async def open(self) -> None: ...

    async def write(self, events: Sequence[Event]) -> int: ...

    async def search(self, query: Query) -> Page: ...

    async def message(self, message_id: str) -> MessageRecord | None: ...

    async def purge(self, before: datetime) -> int: ...

    async def close(self) -> None: ...


class IndexSchemaError(Exception):
    """The index's schema is not one this code can use; the message says why."""


class IndexUnavailable(Exception):
    """The database cannot be reached or written now; the same call may work later."""


def open_index(section: AuditSettings) -> Index:
    """The index ``[audit]`` configures (call ``open`` before using it)."""
    from postline.audit.index.backends import postgres, sqlite
    from postline.audit.index.store import SqlIndex

    if section.database_url:
        return SqlIndex(postgres(section.database_url))
    return SqlIndex(sqlite(section.trail_dir / "index.sqlite3"))
