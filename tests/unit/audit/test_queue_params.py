"""POST /v1/queue/{action} bodies: exactly one way of choosing, checked fields, clear 400s."""

from __future__ import annotations

from typing import Any

import pytest

from postline.audit.params import BadParameter
from postline.audit.queueparams import parse_selection


def test_ids_all_and_filters_each_select() -> None:
    assert parse_selection("retry", {"ids": ["A", "B", "A"]}).ids == ("A", "B")
    assert parse_selection("delete", {"all": True, "reason": "spam"}).all
    chosen = parse_selection("bounce", {"domain": "@Partner.test", "older_than": "2h"})
    assert (chosen.domain, chosen.older_than) == ("Partner.test", 7200.0)
    assert chosen.states == ("deferred", "held", "parked")
    assert parse_selection("hold", {"sender": "<m@c.test>", "keep": True}).keep
    assert parse_selection("release", {"state": "PARKED"}).states == ("parked",)
    assert parse_selection("retry", {"older_than": 90}).older_than == 90.0


@pytest.mark.parametrize(
    ("action", "body", "says"),
    [
        ("purge", {"all": True}, "unknown action"),
        ("retry", [], "JSON object"),
        ("retry", {}, "exactly one"),
        ("retry", {"ids": ["A"], "all": True}, "exactly one"),
        ("retry", {"ids": ["A"], "domain": "x.test"}, "exactly one"),
        ("retry", {"all": True, "rcpt": "a@b.test"}, "exactly one"),
        ("retry", {"all": False}, "exactly one"),
        ("retry", {"ids": []}, "ids must be a list"),
        ("retry", {"ids": "A"}, "ids must be a list"),
        ("retry", {"ids": ["bad\nid"]}, "ids must be message ids"),
        ("retry", {"older_than": "soon"}, "older_than must be a duration"),
        ("retry", {"older_than": -5}, "older_than must be a duration"),
        ("retry", {"older_than": True}, "older_than must be a duration"),
        ("retry", {"state": "parked"}, "state must be one of deferred, held for retry"),
        ("hold", {"state": "held"}, "state must be one of deferred for hold"),
        ("retry", {"all": True, "keep": True}, "keep applies to hold only"),
        ("retry", {"all": "yes"}, "all must be true or false"),
        ("retry", {"all": True, "dry_run": 1}, "dry_run must be true or false"),
        ("retry", {"all": True, "reason": "a\r\nb"}, "reason must be printable"),
        ("retry", {"all": True, "actor": "x" * 101}, "actor must be printable"),
        ("retry", {"all": True, "colour": "red"}, "unknown field 'colour'"),
        ("retry", {"sender": "nobody"}, "sender must be an email address"),
        ("retry", {"domain": "a@b"}, "domain must be a domain"),
    ],
)
def test_bad_bodies_are_refused_with_a_message_naming_the_problem(
    action: str, body: Any, says: str
) -> None:
    with pytest.raises(BadParameter, match=says):
        parse_selection(action, body)
