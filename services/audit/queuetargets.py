"""Which messages an operator action is for, and how far each request has got: from the index.

``resolve(index, selection)`` turns a ``Selection`` into ``Resolved``: the ids
of the messages the action applies to (in a state of ``ACTIONABLE``), each
with its state, and for explicit ``ids`` the ones that are not waiting
(unknown to the index: state ``unknown``; or in another state). ``all`` and the
filters search the index once per actionable state (pages of ``MAX_LIMIT``),
at most ``MAX_MATCH`` messages; more is a ``BadParameter`` (narrow it down).

``request_status(index, request_id, action, ids)`` is the answer of ``GET
/v1/queue/requests/{id}``: each id is *applied* when the message has the
``operator`` event ``stable_event_id(id, "operator", request_id)``, *gone*
when it has not and is in a terminal state (delivered, bounced, expired,
deleted, ...: "already delivered" and the like), *pending* otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from postline.audit.fold import TERMINAL
from postline.audit.index import MAX_LIMIT, Index, Query
from postline.audit.params import BadParameter
from postline.audit.queueparams import ACTIONABLE, Selection
from postline.models import stable_event_id

MAX_MATCH = 50_000
UNKNOWN = "unknown"


@dataclass
class Resolved:
    """The messages an action applies to (id -> state) and the named ones it does not."""

    states: dict[str, str] = field(default_factory=dict)
    not_waiting: list[dict[str, str]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return list(self.states)


async def resolve(index: Index, selection: Selection) -> Resolved:
    """The messages ``selection`` names (module docstring)."""
    if selection.ids is not None:
        return await _by_ids(index, selection.ids, ACTIONABLE[selection.action])
    found = Resolved()
    for state in selection.states:
        cursor: str | None = None
        while True:
            page = await index.search(_query(selection, state, cursor))
            for record in page.messages:
                found.states.setdefault(record.message_id, record.state)
            if len(found.states) > MAX_MATCH:
                raise BadParameter(
                    f"more than {MAX_MATCH} messages match: narrow the selection down"
                )
            cursor = page.next_cursor
            if cursor is None:
                break
    return found


async def _by_ids(index: Index, ids: Sequence[str], allowed: Sequence[str]) -> Resolved:
    found = Resolved()
    for message_id in ids:
        record = await index.message(message_id)
        state = UNKNOWN if record is None else record.state
        if state in allowed:
            found.states[message_id] = state
        else:
            found.not_waiting.append({"id": message_id, "state": state})
    return found


def _query(selection: Selection, state: str, cursor: str | None) -> Query:
    return Query(
        state=state,
        domain=selection.domain,
        sender=selection.sender,
        rcpt=selection.rcpt,
        older_than=selection.older_than,
        reply=selection.reply,
        limit=MAX_LIMIT,
        cursor=cursor,
    )


async def request_status(
    index: Index, request_id: str, action: str, ids: Sequence[str]
) -> dict[str, Any]:
    """The progress of one request (module docstring)."""
    applied: list[str] = []
    gone: list[dict[str, str]] = []
    pending: list[str] = []
    for message_id in ids:
        record = await index.message(message_id)
        wanted = stable_event_id(message_id, "operator", request_id)
        if record is not None and any(event.event_id == wanted for event in record.events):
            applied.append(message_id)
        elif record is None or record.state in TERMINAL:
            gone.append({"id": message_id, "state": UNKNOWN if record is None else record.state})
        else:
            pending.append(message_id)
    return {
        "request_id": request_id,
        "action": action,
        "total": len(ids),
        "applied": applied,
        "gone": gone,
        "pending": pending,
    }
