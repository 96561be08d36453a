"""Control records: their JSON form, and how the state folds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postline.control import (
    ControlState,
    DoneMarker,
    OperatorAction,
    copy_of,
    decode,
    encode,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def action(name: str, *ids: str, at: datetime = T0, rid: str = "R1") -> OperatorAction:
    return OperatorAction(rid, name, ids, None, "ops", False, at)  # type: ignore[arg-type]


def test_records_survive_their_json_form() -> None:
    hold = OperatorAction("R1", "hold", ("A", "B"), "why", "alice", True, T0)
    assert decode("action", encode(hold)) == hold
    marker = DoneMarker("A", 3, "R1", "C9")
    assert decode("done", encode(marker)) == marker
    assert decode("done", b'{"message_id": "A", "attempt": 1, "request_id": "R"}') == DoneMarker(
        "A", 1, "R", None
    )
    assert decode("sync", b'{"token": "x"}') is None
    assert decode("from-the-future", b"{}") is None


def test_an_unknown_action_or_a_naive_time_is_handled() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        decode("action", encode(action("retry", "A")).replace(b'"retry"', b'"explode"'))
    naive = encode(action("retry", "A")).replace(b"+00:00", b"")
    record = decode("action", naive)
    assert isinstance(record, OperatorAction) and record.at == T0


def test_the_latest_action_wins_and_a_tie_goes_to_the_one_read_last() -> None:
    state = ControlState("ns.control")
    first, second = action("hold", "A", rid="R1"), action("release", "A", rid="R2")
    state.apply(first)
    state.apply(second)
    assert state.action_for("A") == second
    state.apply(action("delete", "A", at=T0 - timedelta(seconds=1)))
    assert state.action_for("A") == second
    for record in (first, second):  # the stream read again after a reconnect, in its order
        state.apply(record)
    assert state.action_for("A") == second


def test_copy_headers_are_text_or_absent() -> None:
    assert copy_of({"postline-copy": "C1"}) == "C1"
    assert copy_of({"postline-copy": b"C2"}) == "C2"
    assert copy_of({}) is None


def test_records_older_than_the_retention_are_forgotten_so_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("postline.control.time.monotonic", lambda: clock[0])
    state = ControlState("ns.control", retention=3600)
    state.apply(action("hold", "OLD", at=T0))
    state.apply(action("hold", "NEW", at=T0 + timedelta(hours=2)))
    state.apply(DoneMarker("OLD", 1, "R1"))
    clock[0] += 3000
    state.apply(DoneMarker("NEW", 1, "R2"))
    clock[0] += 700
    state.prune(now=T0 + timedelta(hours=2, minutes=30))
    assert state.action_for("OLD") is None
    assert not state.is_done("OLD", 1)
    assert state.action_for("NEW") is not None
    assert state.is_done("NEW", 1)
    assert state.size == 2


def test_pruning_runs_by_itself_as_records_come_in() -> None:
    state = ControlState("ns.control", retention=60)
    old = datetime.now(UTC) - timedelta(hours=1)
    for n in range(999):
        state.apply(action("delete", f"M{n}", at=old, rid=f"R{n}"))
    assert state.size == 999
    state.apply(action("delete", "LAST", at=datetime.now(UTC), rid="RL"))
    assert state.size == 1
