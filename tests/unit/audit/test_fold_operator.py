"""Operator actions in the index's states: bounce ends the mail, release ends parked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from postline.audit.fold import fold, recipient_state
from postline.models import Event, EventKind

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
RCPT = "john@partner.test"


def at(minutes: int, kind: EventKind, **fields: Any) -> Event:
    return Event(kind=kind, service="t", message_id="M1", at=T0 + timedelta(minutes=minutes),
                 **fields)  # fmt: skip


RECEIVED = at(0, EventKind.RECEIVED, rcpt_to=(RCPT,))
DEFERRED = at(1, EventKind.DEFERRED, recipient=RCPT, attempt=1)


def test_a_bounce_by_the_operator_ends_the_recipient_as_bounced() -> None:
    bounce = at(5, EventKind.OPERATOR, action="bounce", rcpt_to=(RCPT,))
    assert recipient_state([RECEIVED, DEFERRED, bounce]) == "bounced"
    assert fold([bounce, DEFERRED, RECEIVED]).state == "bounced"


def test_a_released_parked_message_is_waiting_again_and_parked_again_if_it_fails_again() -> None:
    parked = at(2, EventKind.PARKED, reason="delivery_limit", stage="deliver")
    release = at(3, EventKind.OPERATOR, action="release")
    assert recipient_state([RECEIVED, DEFERRED, parked]) == "parked"
    assert recipient_state([RECEIVED, DEFERRED, parked, release]) == "deferred"
    assert recipient_state([RECEIVED, parked, release]) == "queued"
    again = at(4, EventKind.PARKED, reason="delivery_limit", stage="deliver", count=2)
    assert recipient_state([RECEIVED, parked, release, again]) == "parked"


def test_delete_of_a_parked_message_is_terminal() -> None:
    parked = at(2, EventKind.PARKED, reason="boom")
    delete = at(3, EventKind.OPERATOR, action="delete")
    assert recipient_state([RECEIVED, parked, delete]) == "deleted"


def test_hold_then_release_then_hold_is_held() -> None:
    hold, release, op = "hold", "release", EventKind.OPERATOR
    events = [RECEIVED, DEFERRED, at(2, op, action=hold), at(3, op, action=release),
              at(4, op, action=hold)]  # fmt: skip
    assert recipient_state(events) == "held"
    assert recipient_state(events[:4]) == "deferred"


def test_the_diagnosis_names_the_operator_who_bounced_deleted_or_held_it() -> None:
    from postline.audit.index.records import build_record
    from postline.audit.views import to_json

    def diagnosis(action: str, reason: str | None) -> str:
        op = at(5, EventKind.OPERATOR, action=action, actor="alice", reason=reason,
                rcpt_to=(RCPT,))  # fmt: skip
        return str(to_json(build_record("M1", [RECEIVED, DEFERRED, op]))["diagnosis"])

    assert diagnosis("bounce", "gave up") == (
        "Diagnosis: bounced by operator alice (gave up): it will not be delivered"
    )
    assert diagnosis("delete", None) == (
        "Diagnosis: deleted by operator alice: it will not be delivered"
    )
    assert diagnosis("hold", "partner asked").startswith(
        "Diagnosis: held by operator alice (partner asked): it is not tried"
    )
