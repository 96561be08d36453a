"""The index's tables, their version and the migrations between versions.

Tables (the same SQL on SQLite and PostgreSQL; times are integer microseconds
since the Unix epoch, UTC):

* ``postline_meta``: ``key``/``value``; ``schema_version`` is the version.
* ``postline_events``: every event once (``event_id`` is the primary key), its
  ``message_id``, time, kind and its JSON (``body``, ASCII only).
* ``postline_messages``: one row per message, folded from its events, for
  searching: state, sender, ``Message-ID``, ``sort_at`` (``received_at`` or the
  first event's time), the last event's time (retention) and the last reply.
* ``postline_recipients``: one row per recipient of a message: address and
  domain (lower case), state and last reply.

``migrate(cursor, placeholder)`` runs inside the caller's write transaction:
it creates the tables on an empty database, applies ``MIGRATIONS`` from the
stored version up to ``SCHEMA_VERSION``, and raises ``IndexSchemaError`` for
a version newer than this code knows (written by a newer audit) instead of
touching it. A migration is a list of statements for one version step; add
``MIGRATIONS[2]`` and bump ``SCHEMA_VERSION`` to change the schema.
"""

from __future__ import annotations

from typing import Any

from postline.audit.index import IndexSchemaError

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE postline_events ("
        " event_id TEXT PRIMARY KEY, message_id TEXT NOT NULL, at_us BIGINT NOT NULL,"
        " kind TEXT NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX postline_events_message ON postline_events (message_id, at_us)",
        "CREATE TABLE postline_messages ("
        " message_id TEXT PRIMARY KEY, state TEXT NOT NULL, partly INTEGER NOT NULL,"
        " mail_from TEXT, header_id TEXT, sort_at BIGINT NOT NULL, received_at BIGINT,"
        " last_at BIGINT NOT NULL, reply TEXT)",
        "CREATE INDEX postline_messages_sort ON postline_messages (sort_at, message_id)",
        "CREATE INDEX postline_messages_sender ON postline_messages (mail_from, sort_at)",
        "CREATE INDEX postline_messages_header ON postline_messages (header_id)",
        "CREATE INDEX postline_messages_state ON postline_messages (state, sort_at)",
        "CREATE INDEX postline_messages_last ON postline_messages (last_at)",
        "CREATE TABLE postline_recipients ("
        " message_id TEXT NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL,"
        " state TEXT NOT NULL, reply TEXT, PRIMARY KEY (message_id, address))",
        "CREATE INDEX postline_recipients_address ON postline_recipients (address)",
        "CREATE INDEX postline_recipients_domain ON postline_recipients (domain)",
    ],
}

_META = "CREATE TABLE IF NOT EXISTS postline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def migrate(cursor: Any, placeholder: str, where: str) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version found (0: empty)."""
    cursor.execute(_META)
    cursor.execute(
        f"SELECT value FROM postline_meta WHERE key = {placeholder}", ("schema_version",)
    )
    row = cursor.fetchone()
    found = int(row[0]) if row is not None else 0
    if found > SCHEMA_VERSION:
        raise IndexSchemaError(
            f"the audit index ({where}) has schema version {found}, newer than this audit "
            f"knows ({SCHEMA_VERSION}): run a newer audit, or point it at another index"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version]:
            cursor.execute(statement)
    if found != SCHEMA_VERSION:
        cursor.execute(
            f"INSERT INTO postline_meta (key, value) VALUES ({placeholder}, {placeholder}) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ("schema_version", str(SCHEMA_VERSION)),
        )
    return found
