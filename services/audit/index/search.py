"""A ``Query`` as one SQL statement over ``postline_messages``, and its opaque cursor.

``page_sql(query, now)`` returns the SELECT (parameters spelled ``%s``; the
store respells them) of the message ids and sort keys of one page plus one
row more (there is a next page when it comes back), newest first: by
``sort_at`` descending, then ``message_id`` descending. Pagination is by key,
not offset: the cursor holds the last row's ``(sort_at, message_id)`` and the
next page starts strictly after it, so rows written meanwhile never shift a
page. Values are always parameters, never SQL text; a ``reply`` substring is
matched with ``LIKE`` with its wildcards escaped.

A cursor is ``base64url(JSON [sort_at, message_id])``; ``read_cursor`` raises
``ValueError`` for anything else (the API answers ``400``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from postline.audit.fold import address_key
from postline.audit.index import MAX_LIMIT, Query
from postline.audit.index.rows import clean, domain_key, message_id_key, to_us

_RECIPIENTS = "m.message_id IN (SELECT message_id FROM postline_recipients WHERE {})"


def limit_of(query: Query) -> int:
    return max(1, min(MAX_LIMIT, query.limit))


def page_sql(query: Query, now: datetime) -> tuple[str, list[Any]]:
    """The statement for ``query`` (module docstring)."""
    where, params = _conditions(query, now)
    if query.cursor is not None:
        sort_at, message_id = read_cursor(query.cursor)
        where.append("(m.sort_at < %s OR (m.sort_at = %s AND m.message_id < %s))")
        params += [sort_at, sort_at, message_id]
    sql = "SELECT m.message_id, m.sort_at FROM postline_messages m"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY m.sort_at DESC, m.message_id DESC LIMIT %s"
    return sql, [*params, limit_of(query) + 1]


def _conditions(query: Query, now: datetime) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        where.append(condition)
        params.extend(values)

    if query.rcpt is not None:
        add(_RECIPIENTS.format("address = %s"), clean(address_key(query.rcpt)))
    if query.domain is not None:
        add(_RECIPIENTS.format("domain = %s"), domain_key(query.domain))
    if query.sender is not None:
        add("m.mail_from = %s", clean(address_key(query.sender)))
    if query.message_id is not None:
        bare = clean(query.message_id.strip().removeprefix("<").removesuffix(">").strip())
        add("(m.message_id = %s OR m.header_id = %s)", bare, message_id_key(query.message_id))
    if query.state is not None:
        add("m.state = %s", query.state)
    if query.since is not None:
        add("m.sort_at >= %s", to_us(query.since))
    if query.until is not None:
        add("m.sort_at <= %s", to_us(query.until))
    if query.older_than is not None:
        add("m.sort_at <= %s", to_us(now) - int(query.older_than * 1_000_000))
    if query.reply is not None:
        pattern = "%" + _escape_like(clean(query.reply.lower())) + "%"
        replies = _RECIPIENTS.format("reply LIKE %s ESCAPE '!'")
        add(f"(m.reply LIKE %s ESCAPE '!' OR {replies})", pattern, pattern)
    return where, params


def _escape_like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def make_cursor(sort_at: int, message_id: str) -> str:
    raw = json.dumps([sort_at, message_id], ensure_ascii=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def read_cursor(cursor: str) -> tuple[int, str]:
    """The ``(sort_at, message_id)`` a cursor holds; ``ValueError`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a cursor of this index") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or type(value[0]) is not int
        or not -(2**63) <= value[0] < 2**63
        or not isinstance(value[1], str)
    ):
        raise ValueError("not a cursor of this index")
    return value[0], value[1]
