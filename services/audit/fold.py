"""The state rules of the audit index: events in, recipient and message states out.

Pure functions; events may come in any order and the result is the same.

Which events apply to which recipient: an event with a ``recipient`` applies
to that address (compared case-insensitively); one without it but with
``rcpt_to`` applies to each of those; one with neither (``parked``, a refused
AUTH) applies to every recipient of the message. Recipients are named by the
events that carry a state (``received``, ``filtered``, the outcomes, ...);
``conversation`` and ``dsn_sent`` name none and decide nothing.

What each kind means (``STATE_OF_KIND``): ``received``/``filtered`` queued;
``deferred`` and ``delayed`` (a delay warning was sent) deferred; ``delivered``,
``bounced``, ``expired``, ``rejected`` and ``discarded`` (a filter dropped it:
rejected), ``refused``, ``parked`` themselves. An ``operator`` event with
action ``hold`` holds the mail until one with ``release`` or ``retry``;
``delete`` deletes it and ``bounce`` bounces it (both terminal: no attempt
follows).

``recipient_state(events)``: terminal states (``TERMINAL``) win, the latest
by ``at``. Otherwise the latest of ``parked``, a hold and a release decides:
``parked`` or ``held``, while a release (``release``/``retry``: the message
was put back to work) lets the mail be ``deferred`` (if it ever was) or
``queued`` again. Events are always taken in
``time_order``: by ``at``; at the same time in the order of a message's life
(received, filtered, the conversation, the outcome, the DSN), then by
``event_id``; so a tie is decided the same way whatever the arrival order.

``message_state(states)``: any ``deferred`` recipient -> deferred, else any
``queued`` -> queued, else ``held``, else ``parked`` if any, else
``delivered`` if all are, else the worst terminal one (``WORST``). A message
without recipients (a refused AUTH) takes the state of its own events.
``partly_delivered``: some recipients delivered and some not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from postline.models import Event, EventKind

STATE_OF_KIND: dict[EventKind, str] = {
    EventKind.RECEIVED: "queued",
    EventKind.FILTERED: "queued",
    EventKind.DEFERRED: "deferred",
    EventKind.DELAYED: "deferred",
    EventKind.DELIVERED: "delivered",
    EventKind.BOUNCED: "bounced",
    EventKind.EXPIRED: "expired",
    EventKind.REJECTED: "rejected",
    EventKind.DISCARDED: "rejected",
    EventKind.REFUSED: "refused",
    EventKind.PARKED: "parked",
}
OPERATOR_STATES = {"hold": "held", "delete": "deleted", "bounce": "bounced"}
RELEASES = frozenset({"release", "retry"})
TERMINAL = frozenset({"delivered", "bounced", "expired", "rejected", "refused", "deleted"})
WORST = ("deleted", "refused", "rejected", "bounced", "expired", "delivered")
"""Terminal states from worst to best: what a message with mixed outcomes is called."""


def event_state(event: Event) -> str | None:
    """The state ``event`` stands for, or None (conversation, dsn_sent, release, ...)."""
    if event.kind is EventKind.OPERATOR:
        return OPERATOR_STATES.get(event.action or "")
    return STATE_OF_KIND.get(event.kind)


def recipient_state(events: Iterable[Event]) -> str:
    """The state of one recipient from the events that apply to it (module docstring)."""
    ordered = sorted(events, key=time_order)
    terminal = [event for event in ordered if event_state(event) in TERMINAL]
    if terminal:
        return event_state(terminal[-1]) or "queued"
    waiting = _waiting(ordered)
    if waiting is not None:
        return waiting
    states = {event_state(event) for event in ordered}
    return "deferred" if "deferred" in states else "queued"


def message_state(states: Iterable[str]) -> str:
    """The state of a message from its recipients' states (module docstring)."""
    found = set(states)
    for pending in ("deferred", "queued", "held", "parked"):
        if pending in found:
            return pending
    if not found:
        return "queued"
    return next(state for state in WORST if state in found)


def partly_delivered(states: Iterable[str]) -> bool:
    found = set(states)
    return "delivered" in found and len(found) > 1


@dataclass
class Folded:
    """A message's events sorted by time and assigned to its recipients."""

    events: list[Event]
    recipients: dict[str, list[Event]] = field(default_factory=dict)
    """Address as first named -> the events that apply to it, in time order."""
    states: dict[str, str] = field(default_factory=dict)
    state: str = "queued"
    partly_delivered: bool = False


def fold(events: Iterable[Event]) -> Folded:
    """Sort, assign and fold every event of one message."""
    ordered = sorted(events, key=time_order)
    folded = Folded(events=ordered)
    names = _recipient_names(ordered)
    applying: dict[str, list[Event]] = {key: [] for key in names}
    for event in ordered:
        for key in _keys(event, names):
            if key in applying:
                applying[key].append(event)
    for key, address in names.items():
        folded.recipients[address] = applying[key]
        folded.states[address] = recipient_state(applying[key])
    if folded.states:
        folded.state = message_state(folded.states.values())
        folded.partly_delivered = partly_delivered(folded.states.values())
    else:
        folded.state = recipient_state(ordered)
    return folded


def address_key(address: str) -> str:
    """How recipients and senders compare: without angle brackets, case-insensitively."""
    return address.strip().removeprefix("<").removesuffix(">").strip().lower()


def _recipient_names(ordered: Sequence[Event]) -> dict[str, str]:
    """Key -> address as first written, for every recipient an event with a state names."""
    names: dict[str, str] = {}
    for event in ordered:
        if event_state(event) is None and not _is_release(event):
            continue
        for address in _named(event):
            names.setdefault(address_key(address), address)
    return names


def _named(event: Event) -> tuple[str, ...]:
    if event.recipient is not None:
        return (event.recipient,)
    return event.rcpt_to or ()


def _keys(event: Event, everyone: Iterable[str]) -> Iterable[str]:
    """The recipients (by key) ``event`` applies to (module docstring)."""
    if event.recipient is not None:
        return (address_key(event.recipient),)
    if event.rcpt_to is not None:
        return dict.fromkeys(address_key(address) for address in event.rcpt_to)
    return everyone


def _waiting(ordered: Sequence[Event]) -> str | None:
    """``parked`` or ``held`` when the latest parked/hold/release event says so, else None."""
    for event in reversed(ordered):
        if event.kind is EventKind.PARKED:
            return "parked"
        if event.kind is EventKind.OPERATOR and event.action == "hold":
            return "held"
        if _is_release(event):
            return None
    return None


def _is_release(event: Event) -> bool:
    return event.kind is EventKind.OPERATOR and (event.action or "") in RELEASES


_STEP = {  # events at the same time: in the order of a message's life, then by id
    EventKind.RECEIVED: 0,
    EventKind.REFUSED: 0,
    EventKind.FILTERED: 1,
    EventKind.REJECTED: 2,
    EventKind.DISCARDED: 2,
    EventKind.CONVERSATION: 3,
    EventKind.DEFERRED: 4,
    EventKind.DELIVERED: 4,
    EventKind.BOUNCED: 4,
    EventKind.EXPIRED: 4,
    EventKind.DELAYED: 5,
    EventKind.DSN_SENT: 6,
    EventKind.PARKED: 7,
    EventKind.OPERATOR: 8,
}


def time_order(event: Event) -> tuple[float, int, str]:
    """How events are ordered everywhere: by time; at the same time by step, then by id."""
    return (event.at.timestamp(), _STEP.get(event.kind, 9), event.event_id)
