"""The two databases of the index, as DB-API connections plus what differs between them.

``sqlite(path)``: the embedded default, in WAL mode (readers never wait for the
writer) with ``synchronous=FULL``, so a committed batch survives a crash or a
power cut: the audit service acks events only after their commit. One audit
process per file (several replicas need PostgreSQL).

``postgres(url)``: psycopg 3 in autocommit mode (the store says ``BEGIN`` and
``COMMIT`` itself), for an index several audit replicas share; writers that
touch the same messages are serialised by transaction-scoped advisory locks.

A ``Backend`` says how to connect, how a parameter is spelled, how a write
transaction begins, how to lock messages, which errors mean "the database is
unavailable" (retry later) and how to name the database in a log line (never
with its password).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Backend:
    name: str
    where: str  # for people: the file, or host:port/database
    connect: Callable[[], Any]
    placeholder: str
    begin_write: str
    unavailable: Callable[[BaseException], bool]
    lock: Callable[[Any, Sequence[str]], None] | None = None
    """Serialise writers of these message ids within the transaction (None: not needed)."""


def sqlite(path: Path) -> Backend:
    def connect() -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=10000")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    return Backend("sqlite", str(path), connect, "?", "BEGIN IMMEDIATE", _sqlite_unavailable)


def postgres(url: str) -> Backend:
    import psycopg  # imported only where PostgreSQL is configured

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    def unavailable(error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | OSError)

    return Backend(
        "postgresql", _where(url), connect, "%s", "BEGIN", unavailable, lock=_advisory_locks
    )


def _sqlite_unavailable(error: BaseException) -> bool:
    """Locked, read-only, disk full, I/O error, a damaged file: not the events' fault."""
    if isinstance(error, sqlite3.OperationalError | OSError):
        return True
    return type(error) is sqlite3.DatabaseError


def lock_key(message_id: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (collisions only serialise)."""
    digest = hashlib.blake2b(message_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _advisory_locks(cursor: Any, message_ids: Sequence[str]) -> None:
    """Lock every message id, in key order so two writers cannot deadlock."""
    keys = sorted({lock_key(message_id) for message_id in message_ids})
    cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL at {host}{port}{parts.path or '/'}"
