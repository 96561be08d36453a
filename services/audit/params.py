"""The search parameters of ``GET /v1/messages`` and the console's form, checked, as a ``Query``.

``parse_query(params, now)`` takes the query string's multi-dict and returns
the index ``Query`` or raises ``BadParameter`` with one message fit for a
``400`` (it names the parameter, never echoes more than a short excerpt of
what was sent). Known parameters: ``rcpt``, ``sender`` (an address; angle
brackets optional), ``message_id`` (a Postline id or a ``Message-ID`` value),
``state`` (one of ``STATES``), ``since``, ``until`` (ISO 8601, a naive time is
UTC; or a duration such as ``2h`` meaning that long before ``now``),
``domain`` (a recipient domain), ``older_than`` (a duration, ``2h`` or a
number of seconds: received at least that long ago), ``reply`` (text found in
a last reply, case-insensitive), ``limit`` (1-500, default 50) and ``cursor``
(from a previous page). An empty value is
the same as an absent parameter (a search form sends every field); an unknown
or repeated parameter is an error, so a typo never silently widens a search.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from multidict import MultiMapping

from postline.audit.index import Index, Page, Query
from postline.audit.views import STATES
from postline.values import parse_duration

PARAMETERS = (
    "rcpt",
    "sender",
    "message_id",
    "state",
    "since",
    "until",
    "domain",
    "older_than",
    "reply",
    "limit",
    "cursor",
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_MAX_ADDRESS = 320
_MAX_TEXT = 998
_MAX_CURSOR = 2000
_MAX_DOMAIN = 253
MAX_AGE = 10 * 366 * 86400.0
"""The longest ``older_than`` accepted (ten years)."""


class BadParameter(ValueError):
    """A search parameter that cannot be used; the message says which and why."""


def parse_query(params: MultiMapping[str], now: datetime) -> Query:
    """The ``Query`` the parameters ask for (module docstring)."""
    values = _single_values(params)
    since = _time(values, "since", now)
    until = _time(values, "until", now)
    if since is not None and until is not None and since > until:
        raise BadParameter("since must not be later than until")
    return Query(
        rcpt=_address(values, "rcpt"),
        sender=_address(values, "sender"),
        message_id=_text(values, "message_id", _MAX_TEXT),
        state=_state(values),
        since=since,
        until=until,
        domain=domain(values.get("domain")),
        older_than=older_than(values.get("older_than")),
        reply=_text(values, "reply", _MAX_TEXT),
        limit=_limit(values),
        cursor=_text(values, "cursor", _MAX_CURSOR),
    )


def _single_values(params: MultiMapping[str]) -> Mapping[str, str]:
    values: dict[str, str] = {}
    for name in dict.fromkeys(params.keys()):
        if name not in PARAMETERS:
            raise BadParameter(f"unknown parameter {_excerpt(name)}; use {', '.join(PARAMETERS)}")
        given = params.getall(name)
        if len(given) > 1:
            raise BadParameter(f"{name} is given more than once")
        if given[0].strip():
            values[name] = given[0].strip()
    return values


def _address(values: Mapping[str, str], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    bare = value.removeprefix("<").removesuffix(">").strip()
    if "@" not in bare or len(bare) > _MAX_ADDRESS or not bare.isprintable():
        raise BadParameter(f"{name} must be an email address such as john@example.com")
    return bare


def domain(value: str | None, name: str = "domain") -> str | None:
    """A recipient domain such as ``partner.test`` (a leading ``@`` is dropped), or None."""
    if value is None:
        return None
    bare = value.strip().removeprefix("@").rstrip(".")
    if not bare or "@" in bare or len(bare) > _MAX_DOMAIN or not bare.isprintable() or " " in bare:
        raise BadParameter(f"{name} must be a domain such as partner.example")
    return bare


def older_than(value: object, name: str = "older_than") -> float | None:
    """Seconds from a duration (``2h``) or a number of seconds; None when absent."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        seconds = -1.0
    if not 0 < seconds <= MAX_AGE:
        raise BadParameter(f"{name} must be a duration such as 30m, 2h or 7d, or seconds")
    return seconds


def _text(values: Mapping[str, str], name: str, limit: int) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if len(value) > limit or not value.isprintable():
        raise BadParameter(f"{name} must be printable text of at most {limit} characters")
    return value


def _state(values: Mapping[str, str]) -> str | None:
    value = values.get("state")
    if value is None:
        return None
    if value.lower() not in STATES:
        raise BadParameter(f"state must be one of {', '.join(STATES)}")
    return value.lower()


def _time(values: Mapping[str, str], name: str, now: datetime) -> datetime | None:
    value = values.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            return now - timedelta(seconds=parse_duration(value))
        except (ValueError, OverflowError):
            raise BadParameter(
                f"{name} must be an ISO 8601 time (2026-03-04T05:06:07Z) or a duration "
                "such as 30m, 2h or 7d"
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _limit(values: Mapping[str, str]) -> int:
    value = values.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _excerpt(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)


async def search(index: Index, query: Query) -> Page:
    """``index.search(query)``; a cursor the index cannot read is a ``BadParameter``."""
    try:
        return await index.search(query)
    except BadParameter:
        raise
    except ValueError:
        if query.cursor is None:
            raise
        raise BadParameter("cursor is not valid: use next_cursor of a previous page") from None
