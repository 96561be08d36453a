"""What the flusher does with one message it took from a queue: pure decisions, no I/O.

A flush walks one *source* (``Source``): a retry tier, ``<ns>.held`` or
``<ns>.parked``. For each message taken (``Taken``) ``decide`` returns a
``Step``: what to publish (``Publish``: exchange, routing key, headers, TTL),
and which records the flusher itself owes (a ``DoneMarker``, an ``operator``
event), or nothing (drop). The executor (``postline.audit.flush``) publishes,
waits for every confirm, and only then acks the message taken.

Targeted (its id is named by one of the requests the walk is for; several
requests waiting for the same queue share one walk):

* a copy already handled (``DoneCheck`` says so for its id, attempt and
  ``postline-copy``): drop it, a duplicate left by an earlier crashed flush;
* from a tier or ``held``: a copy to ``<ns>.work``/``deliver`` with
  ``postline-flush: <request id>``; delivery applies the action and writes the
  ``operator`` event and the done marker;
* from ``parked`` (its copies named by ``copy_key``): ``release`` (and
  ``retry``) sends it back to the stage it was parked from
  (``parkedlog.latest_death``); ``delete``/``bounce`` send it to ``deliver``,
  which settles it. What no delivery replica will see (a release
  to ``submit`` or ``events``) gets its ``operator`` event and ``DoneMarker``
  from the flusher; a message without an envelope (a parked event) that is
  deleted or bounced is dropped with an ``operator`` event.

Not targeted: back where it was, with the time it had left: a tier message to
``<ns>.delay`` (its ``postline-tier`` header routes it) with ``expiration =
postline-due - now`` (without the header: AMQP timestamp + the tier's TTL),
straight to ``deliver`` when that time is up; a held one to ``<ns>.held`` with
``expiration = postline-expires - now`` (none when kept; ``deliver`` when over);
a parked one to ``<ns>.parked`` through the default exchange (no second
``parked.log`` copy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from postline.audit.parkedlog import envelope_of, latest_death, stage_of
from postline.control import COPY_HEADER, DUE_HEADER, EXPIRES_HEADER, FLUSH_HEADER, copy_of
from postline.models import Envelope, Event, EventKind, stable_event_id
from postline.topology import TIER_HEADER, Stage, Topology

_NOT_COPIED = frozenset({"x-delivery-count", TIER_HEADER, DUE_HEADER, EXPIRES_HEADER})
"""Headers a copy moved to work does not keep (x-death is kept: parked counts go on)."""
SERVICE = "audit"


DoneCheck = Callable[[str, int, str | None], bool]
"""(message id, attempt, ``postline-copy``) -> that very copy was already handled
(``ControlState.is_done``: a held message, or one back from a busy destination,
is a new copy of the same id and attempt, which an old marker does not drop)."""


class SourceKind(StrEnum):
    TIER = "tier"
    HELD = "held"
    PARKED = "parked"


@dataclass(frozen=True)
class Source:
    """A queue to walk; a tier's ``ttl_ms`` is its ``x-message-ttl``."""

    kind: SourceKind
    queue: str
    ttl_ms: int | None = None


@dataclass(frozen=True)
class Request:
    """What the flush is for: the operator request and the message ids it names."""

    request_id: str
    action: str
    targets: frozenset[str]
    reason: str | None = None
    actor: str = "unknown"


@dataclass(frozen=True)
class Taken:
    """One message taken from the source, as data."""

    message_id: str | None
    headers: Mapping[str, Any]
    routing_key: str | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Publish:
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    expiration_ms: int | None = None


@dataclass(frozen=True)
class Done:
    """A done marker the flusher publishes itself (``postline.control.DoneMarker`` fields)."""

    message_id: str
    attempt: int
    request_id: str
    copy: str | None = None


class Outcome(StrEnum):
    MOVED = "moved"  # targeted: sent on, or settled by the flusher itself
    DUPLICATE = "duplicate"  # targeted, but a copy of it was already handled: dropped
    KEPT = "kept"  # put back where it was


MOVED = Outcome.MOVED


@dataclass(frozen=True)
class Step:
    """What to do with one taken message; ``publish`` None and no event: just ack (drop)."""

    publish: Publish | None
    outcome: Outcome = Outcome.KEPT
    done: Done | None = None
    events: list[Event] = field(default_factory=list)
    why: str = ""


def sources(topology: Topology, kinds: set[SourceKind]) -> list[Source]:
    """The queues of ``kinds`` in ``topology``: every tier (with its TTL), held, parked."""
    found: list[Source] = []
    if SourceKind.TIER in kinds:
        ttls = {q.name: q.arguments.get("x-message-ttl") for q in topology.queues}
        for tier in topology.tiers:
            name = topology.tier_queue(tier)
            ttl = ttls.get(name)
            found.append(Source(SourceKind.TIER, name, ttl if isinstance(ttl, int) else None))
    if SourceKind.HELD in kinds:
        found.append(Source(SourceKind.HELD, topology.held_queue))
    if SourceKind.PARKED in kinds:
        found.append(Source(SourceKind.PARKED, topology.parked_queue))
    return found


def targets(requests: Iterable[Request]) -> dict[str, Request]:
    """Message id -> the request that names it (of several, the last one given)."""
    return {mid: request for request in requests for mid in request.targets}


def decide(
    taken: Taken, source: Source, named: Mapping[str, Request], topology: Topology,
    now_ms: int, is_done: DoneCheck,
) -> Step:  # fmt: skip
    """The step for ``taken``; ``named`` maps targeted ids to their request (``targets``)."""
    mid = taken.message_id
    request = named.get(mid) if mid is not None else None
    if mid is None or request is None:
        return put_back(taken, source, topology, now_ms)
    envelope = envelope_of(taken.headers)
    attempt = envelope.attempt if envelope is not None else 0
    copy = copy_key(taken.headers, source.kind)
    if is_done(mid, attempt, copy):
        return Step(None, Outcome.DUPLICATE, why="a copy of it was already handled: dropped")
    if source.kind is not SourceKind.PARKED:
        return Step(_copy(taken, request, topology.work_exchange, Stage.DELIVER), MOVED)
    return _from_parked(taken, source, request, topology, envelope, copy)


def _from_parked(
    taken: Taken, source: Source, request: Request, topology: Topology,
    envelope: Envelope | None, copy: str | None,
) -> Step:  # fmt: skip
    mid = taken.message_id or ""
    death = latest_death(taken.headers)
    stage = stage_of(death[0], topology.namespace) if death is not None else None
    operator = _operator_event(mid, request, envelope)
    attempt, has_envelope = (envelope.attempt, True) if envelope is not None else (0, False)
    if request.action in ("release", "retry"):
        if stage not in {s.value for s in Stage}:
            kept = put_back(taken, source, topology, 0)
            return replace(kept, why=f"parked from an unknown queue {stage}: kept parked")
        publish = _copy(taken, request, topology.work_exchange, Stage(stage), copy)
        if stage == Stage.DELIVER.value and has_envelope:
            return Step(publish, MOVED)
        done = Done(mid, attempt, request.request_id, copy)
        return Step(publish, MOVED, done=done, events=[operator])
    if not has_envelope or stage == Stage.EVENTS.value:
        return Step(None, MOVED, events=[operator], why="parked message dropped by the operator")
    return Step(_copy(taken, request, topology.work_exchange, Stage.DELIVER, copy), MOVED)


def copy_key(headers: Mapping[str, Any], kind: SourceKind) -> str | None:
    """Which copy a taken message is: its ``postline-copy``; for a parked message
    without one (it came from ingress or filter, which set none), ``parked:<queue>:<count>``
    of its latest death. A parked message's copies carry that value on, so the done
    marker of a released one can never match the message the next stage makes of it
    (filter republishes without the header: a marker keyed None would drop that)."""
    copy = copy_of(headers)
    if copy is not None or kind is not SourceKind.PARKED:
        return copy
    death = latest_death(headers)
    return None if death is None else f"parked:{death[0]}:{death[2]}"


def put_back(taken: Taken, source: Source, topology: Topology, now_ms: int) -> Step:
    """Where a message the request does not name goes: back, with its remaining time."""
    headers = {k: v for k, v in taken.headers.items() if k != "x-delivery-count"}
    if source.kind is SourceKind.PARKED:
        return Step(Publish("", topology.parked_queue, headers))
    if source.kind is SourceKind.HELD:
        expires = _int_header(headers, EXPIRES_HEADER)
        if expires is None:
            return Step(Publish("", topology.held_queue, headers))
        left = expires - now_ms
        if left <= 0:
            return Step(Publish(topology.work_exchange, Stage.DELIVER.value, headers))
        return Step(Publish("", topology.held_queue, headers, left))
    routing_key = taken.routing_key or Stage.DELIVER.value
    due = _int_header(headers, DUE_HEADER)
    if due is None and taken.timestamp_ms is not None and source.ttl_ms is not None:
        due = taken.timestamp_ms + source.ttl_ms
        headers[DUE_HEADER] = due  # so that the next walk still knows it
    if due is None:
        return Step(Publish(topology.delay_exchange, routing_key, headers))
    left = due - now_ms
    if left <= 0:
        return Step(Publish(topology.work_exchange, routing_key, headers))
    return Step(Publish(topology.delay_exchange, routing_key, headers, left))


def _copy(
    taken: Taken, request: Request, exchange: str, stage: Stage, copy: str | None = None
) -> Publish:
    headers = {k: v for k, v in taken.headers.items() if k not in _NOT_COPIED}
    headers[FLUSH_HEADER] = request.request_id
    if copy is not None:
        headers[COPY_HEADER] = copy
    return Publish(exchange, stage.value, headers)


def _operator_event(message_id: str, request: Request, envelope: Envelope | None) -> Event:
    return Event(
        mail_from=envelope.mail_from if envelope is not None else None,
        rcpt_to=envelope.rcpt_to if envelope is not None else None,
        attempt=envelope.attempt if envelope is not None else 0,
        event_id=stable_event_id(message_id, "operator", request.request_id),
        kind=EventKind.OPERATOR,
        service=SERVICE,
        message_id=message_id,
        action=request.action,
        reason=request.reason,
        actor=request.actor,
    )


def _int_header(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str | bytes) and value.strip().isdigit():
        return int(value)
    return None
