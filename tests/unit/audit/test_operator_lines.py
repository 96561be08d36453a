"""Operator and delay events in the trails: queue line, failure lines, nothing forgeable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from postline.audit.lines import KEYS, Trail, format_lines
from postline.models import Event, EventKind
from postline.reply import reply

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def operator(action: str, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "kind": EventKind.OPERATOR,
        "service": "delivery",
        "message_id": "4Q8ZT1K2M7XHBN3C",
        "at": AT,
        "event_id": "op1",
        "action": action,
        "actor": "help-desk",
        "mail_from": "mary@company.test",
        "rcpt_to": ("john@partner.test", "ann@partner.test"),
    }
    values.update(fields)
    return Event(**values)


def decoded(lines: list[tuple[Trail, bytes]]) -> list[tuple[Trail, dict[str, Any]]]:
    found = []
    for trail, line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
        found.append((trail, json.loads(line)))
    return found


@pytest.mark.parametrize("action", ["retry", "hold", "release"])
def test_an_operator_event_that_keeps_the_mail_writes_one_queue_line(action: str) -> None:
    [(trail, line)] = decoded(format_lines(operator(action, reason="destination is back")))
    assert trail is Trail.QUEUE and tuple(line) == KEYS[Trail.QUEUE]
    assert line["kind"] == "operator" and line["action"] == action
    assert line["actor"] == "help-desk" and line["reason"] == "destination is back"
    assert line["rcpt_to"] == ["john@partner.test", "ann@partner.test"]


def test_delete_writes_a_failure_line_per_recipient_with_the_operators_reason() -> None:
    lines = decoded(format_lines(operator("delete", reason="sent by mistake")))
    assert [trail for trail, _ in lines] == [Trail.QUEUE, Trail.FAILURE, Trail.FAILURE]
    failures = [line for trail, line in lines if trail is Trail.FAILURE]
    assert [f["recipient"] for f in failures] == ["john@partner.test", "ann@partner.test"]
    for failure in failures:
        assert tuple(failure) == KEYS[Trail.FAILURE]
        assert failure["reason"] == "deleted by operator: sent by mistake"
        assert failure["kind"] == "operator" and failure["mail_from"] == "mary@company.test"


def test_bounce_writes_bounced_by_operator_and_without_a_reason_just_that() -> None:
    lines = decoded(format_lines(operator("bounce", rcpt_to=("john@partner.test",))))
    assert [(t, line["reason"]) for t, line in lines if t is Trail.FAILURE] == [
        (Trail.FAILURE, "bounced by operator")
    ]
    with_reason = decoded(format_lines(operator("bounce", reason="gave up", rcpt_to=("a@b.test",))))
    assert with_reason[1][1]["reason"] == "bounced by operator: gave up"


def test_a_delay_warning_writes_a_queue_line_with_the_last_reply() -> None:
    last = reply(451, "4.7.1", "greylisted")
    warned = Event(kind=EventKind.DELAYED, service="delivery", message_id="M1", at=AT,
                   recipient="john@partner.test", reply=last)  # fmt: skip
    [(trail, line)] = decoded(format_lines(warned))
    assert trail is Trail.QUEUE and line["kind"] == "delayed"
    assert line["reply"] == {"code": 451, "enhanced": "4.7.1", "text": "greylisted"}


def test_a_parked_line_names_the_stage_and_how_often() -> None:
    parked = Event(kind=EventKind.PARKED, service="audit", message_id="M1", at=AT,
                   reason="delivery_limit", stage="deliver", count=2)  # fmt: skip
    [(_, line)] = decoded(format_lines(parked))
    assert (line["reason"], line["stage"], line["count"]) == ("delivery_limit", "deliver", 2)


HOSTILE = [
    'x"}\n{"kind":"delivered","recipient":"forged@x.test"}',
    "cr\rlf\nnul\x00esc\x1b[31mbel\x07",
    "line separators \u2028\u2029\x85 and non-ascii é ☃",
]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("action", ["delete", "bounce", "hold"])
def test_hostile_reason_and_actor_cannot_split_or_forge_a_line(hostile: str, action: str) -> None:
    lines = format_lines(operator(action, reason=hostile, actor=hostile))
    for trail, raw in lines:
        assert raw.isascii() and b"\r" not in raw and b"\n" not in raw[:-1]
        line = json.loads(raw)
        assert line["kind"] == "operator"
        if trail is Trail.QUEUE:
            assert line["reason"] == hostile and line["actor"] == hostile
        else:
            assert line["reason"].endswith(hostile)
    assert len(lines) == (3 if action in ("delete", "bounce") else 1)
