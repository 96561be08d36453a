"""Parked copies -> parked events: the parking death is the latest x-death entry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from postline.audit.parkedlog import latest_death, parked_event
from postline.models import ENVELOPE_HEADER, Envelope, stable_event_id

NS = "prod"
WHEN = datetime(2026, 3, 4, tzinfo=UTC)
ENVELOPE = Envelope(message_id="M1", mail_from="mary@company.test", rcpt_to=("a@b.test",),
                    attempt=3)  # fmt: skip


def death(queue: str, reason: str, count: int = 1) -> dict[str, Any]:
    return {"count": count, "reason": reason, "queue": queue, "time": WHEN, "exchange": "",
            "routing-keys": ["deliver"]}  # fmt: skip


def parked_by_limit_after_a_tier(count: int = 1) -> dict[str, Any]:
    """What RabbitMQ 3.10 writes (checked): x-first-death-* still name the tier."""
    return {
        ENVELOPE_HEADER: ENVELOPE.to_header(),
        "x-death": [
            death(f"{NS}.deliver", "delivery_limit", count),
            death(f"{NS}.retry.5m", "expired"),
        ],
        "x-first-death-queue": f"{NS}.retry.5m",
        "x-first-death-reason": "expired",
        "x-delivery-count": 0,
    }


def test_a_message_parked_by_the_delivery_limit_gives_a_parked_event_of_its_stage() -> None:
    event = parked_event(parked_by_limit_after_a_tier(), "M1", NS)
    assert event is not None
    assert (event.kind.value, event.stage, event.reason, event.count) == (
        "parked", "deliver", "delivery_limit", 1)  # fmt: skip
    assert event.message_id == "M1" and event.attempt == 3
    assert event.mail_from == "mary@company.test" and event.rcpt_to == ("a@b.test",)
    assert event.event_id == stable_event_id("M1", "parked", f"{NS}.deliver", 1)


def test_the_same_copy_twice_has_the_same_event_id_and_parked_again_a_new_one() -> None:
    first = parked_event(parked_by_limit_after_a_tier(), "M1", NS)
    again = parked_event(parked_by_limit_after_a_tier(), "M1", NS)
    second = parked_event(parked_by_limit_after_a_tier(count=2), "M1", NS)
    assert first is not None and again is not None and second is not None
    assert first.event_id == again.event_id != second.event_id


def test_a_poison_message_rejected_by_its_worker_gives_no_second_event() -> None:
    headers = {"x-death": [death(f"{NS}.submit", "rejected")]}
    assert parked_event(headers, "M1", NS) is None


def test_without_x_death_the_first_death_headers_are_used_and_without_both_nothing() -> None:
    headers = {"x-first-death-queue": f"{NS}.events", "x-first-death-reason": "delivery_limit"}
    event = parked_event(headers, "E1", NS)
    assert event is not None and event.stage == "events" and event.rcpt_to is None
    assert parked_event({}, "E1", NS) is None
    assert latest_death({"x-death": "garbage"}) is None


def test_a_parked_event_parked_from_events_makes_no_event_about_itself() -> None:
    from postline.models import Event, EventKind

    headers = {"x-death": [death(f"{NS}.events", "delivery_limit")]}
    about = Event(kind=EventKind.PARKED, service="audit", message_id="M9").to_json()
    other = Event(kind=EventKind.DELIVERED, service="delivery", message_id="M9").to_json()
    assert parked_event(headers, "E1", NS, about) is None
    assert parked_event(headers, "E2", NS, other) is not None
