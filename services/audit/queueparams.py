"""The body of ``POST /v1/queue/{action}``, checked, as a ``Selection``.

``parse_selection(action, body)`` takes the action of the path and the JSON
body (any value) and returns a ``Selection`` or raises ``BadParameter`` with
one message fit for a ``400`` (naming the field, never echoing what was sent).
The body is an object with exactly one way of choosing messages:

* ``ids``: a list of 1 to ``MAX_IDS`` message ids;
* ``all``: ``true``, every message in a state the action applies to;
* filters: ``state``, ``domain``, ``sender``, ``rcpt``, ``older_than`` (``2h``
  or seconds), ``reply`` (as ``GET /v1/messages``; ``state`` must be one the
  action applies to);

and, for every action, ``dry_run`` (bool), ``reason`` (printable text, at most
``MAX_REASON`` characters), ``actor`` (printable, at most ``MAX_ACTOR``) and,
for ``hold`` only, ``keep`` (never expire while held). Unknown fields are an
error, so a typo never widens a selection. ``ACTIONABLE`` says which states
each action applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postline.audit.params import BadParameter, domain, older_than
from postline.control import ACTIONS

ACTIONABLE: dict[str, tuple[str, ...]] = {
    "retry": ("deferred", "held"),
    "delete": ("deferred", "held", "parked"),
    "bounce": ("deferred", "held", "parked"),
    "hold": ("deferred",),
    "release": ("held", "parked"),
}
"""The message states each action applies to."""
FILTERS = ("state", "domain", "sender", "rcpt", "older_than", "reply")
OPTIONS = ("dry_run", "reason", "keep", "actor")
FIELDS = ("ids", "all", *FILTERS, *OPTIONS)
MAX_IDS = 10_000
MAX_ID = 200
MAX_REASON = 500
MAX_ACTOR = 100
_MAX_ADDRESS = 320
_MAX_TEXT = 998


@dataclass(frozen=True)
class Selection:
    """Which messages an action is for, and how (module docstring)."""

    action: str
    ids: tuple[str, ...] | None = None
    all: bool = False
    state: str | None = None
    domain: str | None = None
    sender: str | None = None
    rcpt: str | None = None
    older_than: float | None = None
    reply: str | None = None
    dry_run: bool = False
    reason: str | None = None
    keep: bool = False
    actor: str | None = None

    @property
    def states(self) -> tuple[str, ...]:
        """The states searched: the filter's, or every state the action applies to."""
        return (self.state,) if self.state is not None else ACTIONABLE[self.action]


def parse_selection(action: str, body: Any) -> Selection:
    """The ``Selection`` ``body`` asks for (module docstring)."""
    if action not in ACTIONS:
        raise BadParameter(f"unknown action; use one of {', '.join(ACTIONS)}")
    if not isinstance(body, Mapping):
        raise BadParameter("the body must be a JSON object")
    unknown = [name for name in body if name not in FIELDS]
    if unknown:
        raise BadParameter(f"unknown field {_excerpt(str(unknown[0]))}; use {', '.join(FIELDS)}")
    ids = _ids(body.get("ids"))
    every = _flag(body, "all")
    filters = {name: body[name] for name in FILTERS if body.get(name) not in (None, "")}
    ways = (ids is not None) + every + bool(filters)
    if ways != 1:
        raise BadParameter("give exactly one of ids, all, or filters (state, domain, sender, "
                           "rcpt, older_than, reply)")  # fmt: skip
    keep = _flag(body, "keep")
    if keep and action != "hold":
        raise BadParameter("keep applies to hold only")
    return Selection(
        action=action,
        ids=ids,
        all=every,
        state=_state(action, filters.get("state")),
        domain=domain(_string(filters, "domain", _MAX_TEXT)),
        sender=_address(filters, "sender"),
        rcpt=_address(filters, "rcpt"),
        older_than=older_than(filters.get("older_than")),
        reply=_string(filters, "reply", _MAX_TEXT),
        dry_run=_flag(body, "dry_run"),
        reason=_string(body, "reason", MAX_REASON),
        keep=keep,
        actor=_string(body, "actor", MAX_ACTOR),
    )


def _ids(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_IDS:
        raise BadParameter(f"ids must be a list of 1 to {MAX_IDS} message ids")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ID or not item.isprintable():
            raise BadParameter(f"ids must be message ids (printable, at most {MAX_ID} characters)")
    return tuple(dict.fromkeys(item.strip() for item in value))


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadParameter(f"{name} must be true or false")
    return value


def _string(body: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise BadParameter(f"{name} must be printable text of at most {limit} characters")
    return value.strip() or None


def _address(body: Mapping[str, Any], name: str) -> str | None:
    value = _string(body, name, _MAX_ADDRESS)
    if value is None:
        return None
    bare = value.removeprefix("<").removesuffix(">").strip()
    if "@" not in bare:
        raise BadParameter(f"{name} must be an email address such as john@example.com")
    return bare


def _state(action: str, value: Any) -> str | None:
    if value is None:
        return None
    allowed = ACTIONABLE[action]
    if not isinstance(value, str) or value.lower() not in allowed:
        raise BadParameter(f"state must be one of {', '.join(allowed)} for {action}")
    return value.lower()


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
