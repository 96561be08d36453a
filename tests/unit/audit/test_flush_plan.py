"""What the flusher does with each message it takes: pure decisions."""

from __future__ import annotations

from typing import Any

from postline.audit.flushplan import Outcome, Request, Source, SourceKind, Taken, decide, targets
from postline.control import COPY_HEADER, DUE_HEADER, EXPIRES_HEADER, FLUSH_HEADER
from postline.models import ENVELOPE_HEADER, Envelope
from postline.topology import TIER_HEADER, build_topology

TOPOLOGY = build_topology("ns", [600], delivery_limit=5, max_queue_length=100)
TIER = Source(SourceKind.TIER, "ns.retry.10m", 600_000)
HELD = Source(SourceKind.HELD, "ns.held")
PARKED = Source(SourceKind.PARKED, "ns.parked")
NOW = 1_000_000_000
ENVELOPE = Envelope(message_id="M1", mail_from="m@c.test", rcpt_to=("a@b.test",), attempt=2)


class Check:
    def __init__(self, done: set[tuple[str, int, str | None]]) -> None:
        self.done = done

    def __call__(self, message_id: str, attempt: int, copy: str | None, /) -> bool:
        return (message_id, attempt, copy) in self.done


NONE_DONE = Check(set())


def taken(mid: str = "M1", **headers: Any) -> Taken:
    return Taken(mid, {ENVELOPE_HEADER: ENVELOPE.to_header(), **headers}, "deliver", NOW - 1000)


def named(action: str = "retry", *ids: str) -> dict[str, Request]:
    return targets([Request("R1", action, frozenset(ids or ("M1",)), actor="ops")])


def test_a_targeted_tier_message_is_copied_to_deliver_with_the_request_id() -> None:
    headers: dict[str, Any] = {TIER_HEADER: "10m", DUE_HEADER: NOW + 5000, COPY_HEADER: "c1",
                               "x-delivery-count": 2}  # fmt: skip
    step = decide(taken(**headers), TIER, named(), TOPOLOGY, NOW, NONE_DONE)
    assert step.outcome is Outcome.MOVED and step.publish is not None
    assert (step.publish.exchange, step.publish.routing_key) == ("ns.work", "deliver")
    copied = step.publish.headers
    assert copied[FLUSH_HEADER] == "R1" and copied[COPY_HEADER] == "c1"
    assert not {TIER_HEADER, DUE_HEADER, "x-delivery-count"} & set(copied)


def test_others_go_back_with_the_time_they_had_left_or_straight_to_deliver() -> None:
    kept = decide(taken("M2", **{DUE_HEADER: NOW + 5000}), TIER, named(), TOPOLOGY, NOW, NONE_DONE)
    assert kept.outcome is Outcome.KEPT and kept.publish is not None
    assert (kept.publish.exchange, kept.publish.expiration_ms) == ("ns.delay", 5000)
    due = decide(taken("M2", **{DUE_HEADER: NOW - 1}), TIER, named(), TOPOLOGY, NOW, NONE_DONE)
    assert due.publish is not None and due.publish.exchange == "ns.work"
    legacy = decide(taken("M2"), TIER, named(), TOPOLOGY, NOW, NONE_DONE)  # no postline-due
    assert legacy.publish is not None and legacy.publish.expiration_ms == 600_000 - 1000
    assert legacy.publish.headers[DUE_HEADER] == NOW - 1000 + 600_000


def test_held_ones_keep_their_lifetime_and_kept_ones_have_none() -> None:
    step = decide(taken("M2", **{EXPIRES_HEADER: NOW + 10}), HELD, named(), TOPOLOGY, NOW,
                  NONE_DONE)  # fmt: skip
    assert step.publish is not None and (step.publish.routing_key, step.publish.expiration_ms) == (
        "ns.held", 10)  # fmt: skip
    kept = decide(taken("M2"), HELD, named(), TOPOLOGY, NOW, NONE_DONE)
    assert kept.publish is not None and kept.publish.expiration_ms is None


def test_a_handled_copy_is_dropped_but_a_new_copy_of_the_same_attempt_is_not() -> None:
    check = Check({("M1", 2, "c1")})
    assert decide(taken(**{COPY_HEADER: "c1"}), TIER, named(), TOPOLOGY, NOW, check).outcome is (
        Outcome.DUPLICATE)  # fmt: skip
    assert decide(taken(**{COPY_HEADER: "c2"}), HELD, named(), TOPOLOGY, NOW, check).outcome is (
        Outcome.MOVED)  # fmt: skip


def test_a_parked_message_from_an_unknown_queue_stays_parked_on_release() -> None:
    death: Any = [{"queue": "elsewhere.x", "reason": "delivery_limit", "count": 1}]
    step = decide(taken(**{"x-death": death}), PARKED, named("release"), TOPOLOGY, NOW, NONE_DONE)
    assert step.outcome is Outcome.KEPT and step.publish is not None
    assert (step.publish.exchange, step.publish.routing_key) == ("", "ns.parked")


def test_a_released_parked_message_carries_a_copy_key_its_next_stage_cannot_reuse() -> None:
    """filter republishes without postline-copy: a marker keyed None would drop that mail."""
    death: Any = [{"queue": "ns.submit", "reason": "delivery_limit", "count": 2}]
    step = decide(taken(**{"x-death": death}), PARKED, named("release"), TOPOLOGY, NOW, NONE_DONE)
    assert step.publish is not None and step.publish.routing_key == "submit"
    assert step.publish.headers[COPY_HEADER] == "parked:ns.submit:2"
    assert step.done is not None and step.done.copy == "parked:ns.submit:2"
    again = Check({("M1", 2, "parked:ns.submit:2")})  # a crash left the parked original behind
    assert decide(taken(**{"x-death": death}), PARKED, named("release"), TOPOLOGY, NOW,
                  again).outcome is Outcome.DUPLICATE  # fmt: skip
