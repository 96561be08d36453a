"""``postline queue`` against a fake audit API on loopback: what it asks, prints and exits with."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from postline.app.cli import main
from postline.app.commands import queue as queue_command
from tests.unit.app.queue_fake import (
    FakeQueueApi,
    Json,
    Pinned,
    Terminal,
    message,
    serving,
)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_command, "datetime", Pinned)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeQueueApi]:
    monkeypatch.delenv("POSTLINE_API_TOKEN", raising=False)
    monkeypatch.setattr(queue_command, "POLL_INTERVAL", 0.01)
    with serving(FakeQueueApi()) as fake:
        yield fake


def run(api: FakeQueueApi, *argv: str) -> int:
    return main(["queue", *argv, "--api", api.url, "--token", "t"])


# -- queue list ---------------------------------------------------------------------------


def test_list_prints_one_line_per_deferred_message_with_attempts_next_attempt_and_last_reply(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.by_state["deferred"] = [message("4QX7K2M9BDF0HJ3C", age=7980)]
    assert run(api, "list", "--domain", "partner.test", "--older-than", "120m") == 0
    [(path, query)] = api.gets
    assert path == "/v1/messages"
    assert query == {
        "state": ["deferred"],
        "domain": ["partner.test"],
        "older_than": ["2h"],
        "limit": ["500"],
    }
    head, row = capsys.readouterr().out.splitlines()
    assert head.split() == [
        "ID",
        "AGE",
        "TRIES",
        "NEXT",
        "SENDER",
        "WAITING",
        "FOR",
        "LAST",
        "REPLY",
    ]
    assert row.split("  ")[0] == "4QX7K2M9BDF0HJ3C"
    assert " 2h13m " in row and "    3  " in row and "in 4m" in row
    assert row.endswith("<mary@example.org>  john@partner.test  451 4.3.0 Try again later")


def test_list_escapes_control_characters_of_senders_recipients_and_replies(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = message("ID1", mail_from="evil\x1b[2J@x.test")
    hostile["recipients"][0]["address"] = "a\r\nFAKE LINE@x.test"
    hostile["recipients"][0]["reply"]["text"] = "later\x07\x1b]0;pwned\x07"
    api.by_state["deferred"] = [hostile]
    assert run(api, "list") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert len(out.splitlines()) == 2
    assert "<evil\\x1b[2J@x.test>" in out and "a\\r\\nFAKE LINE@x.test" in out
    assert "later\\x07\\x1b]0;pwned\\x07" in out


def test_list_all_asks_each_waiting_state_and_says_why_parked_and_held_mail_waits(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    parked = {"kind": "parked", "stage": "deliver", "reason": "delivery_limit", "count": 5}
    hold = {"kind": "operator", "action": "hold", "actor": "alice", "reason": "partner asked"}
    api.by_state = {
        "deferred": [message("D1", age=60)],
        "held": [message("H1", "held", events=[hold], age=120)],
        "parked": [message("P1", "parked", events=[parked], age=30)],
    }
    assert run(api, "list", "--state", "all") == 0
    assert [query["state"] for _, query in api.gets] == [["deferred"], ["held"], ["parked"]]
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["P1", "D1", "H1"]  # newest first
    assert "parked from deliver: delivery_limit (parked 5 times)" in rows[0]
    assert "  held    " in rows[2] and "held by alice: partner asked; 451 4.3.0" in rows[2]


def test_list_json_prints_the_summaries_and_follows_every_page(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.page_size = 2
    api.by_state["deferred"] = [message(f"M{n}") for n in range(5)]
    assert run(api, "list", "--json") == 0
    assert [query.get("cursor") for _, query in api.gets] == [None, ["2"], ["4"]]
    items = json.loads(capsys.readouterr().out)["messages"]
    assert [item["id"] for item in items] == [f"M{n}" for n in range(5)]
    first = items[0]
    assert first["attempts"] == 3 and first["waiting"] == ["john@partner.test"]
    assert first["last_reply"]["code"] == 451 and first["mail_from"] == "mary@example.org"
    assert abs(first["age_seconds"] - 3600) < 60 and first["next_attempt_at"].endswith("Z")


def test_list_with_nothing_waiting_is_exit_1_with_one_line(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(api, "list", "--state", "held") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "postline: queue list: no held message matches\n"


# -- actions ------------------------------------------------------------------------------


def test_dry_run_only_counts_and_lists_the_matches(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.matches = ["A1", "A2"]
    assert run(api, "delete", "--domain", "partner.test", "--dry-run", "--reason", "oops") == 0
    [(path, body)] = api.posts
    assert path == "/v1/queue/delete"
    assert body["dry_run"] is True and body["domain"] == "partner.test" and body["reason"] == "oops"
    assert "ids" not in body and "all" not in body
    assert capsys.readouterr().out == "2 messages match\n  A1\n  A2\n"


def test_a_bulk_retry_sends_chunks_polls_and_ends_with_the_counts_naming_the_delivered(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.matches = [f"M{n:03}" for n in range(250)]

    def progress(ids: list[str], poll: int) -> Json:
        if poll == 1:
            return {"applied": [], "gone": [], "pending": ids}
        gone = [{"id": i, "state": "delivered"} for i in ids if i in ("M007", "M200")]
        return {
            "applied": [i for i in ids if i not in ("M007", "M200")],
            "gone": gone,
            "pending": [],
        }

    api.progress = progress
    assert run(api, "retry", "--domain", "partner.test", "--yes", "--reason", "back up") == 0
    actions = api.actions()
    assert [len(body["ids"]) for body in actions] == [100, 100, 50]
    assert all(body["reason"] == "back up" and body["actor"] for body in actions)
    assert all("keep" not in body and "domain" not in body for body in actions)
    assert all(count >= 2 for count in api.polls.values())
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "250 messages match"
    assert lines[-2] == "no longer waiting: M007 (delivered), M200 (delivered)"
    assert lines[-1] == "done 248, no longer waiting 2, still pending 0"
    assert "requested 250/250" in captured.err and "applied 250/250" in captured.err


def test_more_than_ten_matches_without_yes_and_without_a_terminal_are_refused(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.matches = [f"M{n}" for n in range(11)]
    assert run(api, "bounce", "--all") == 2
    assert api.actions() == [] and api.posts[0][1]["all"] is True
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        "postline: queue bounce: 11 messages match and this is not a terminal: "
        "give --yes to act on them"
    )


@pytest.mark.parametrize(("typed", "code", "acted"), [("n\n", 1, False), ("y\n", 0, True)])
def test_on_a_terminal_more_than_ten_matches_ask_for_confirmation(
    api: FakeQueueApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    typed: str,
    code: int,
    acted: bool,
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stdin", Terminal(typed))
    monkeypatch.setattr("sys.stderr", terminal)
    api.matches = [f"M{n}" for n in range(12)]
    assert run(api, "hold", "--all", "--keep") == code
    assert bool(api.actions()) is acted
    assert "hold 12 messages? [y/N] " in terminal.getvalue()
    if acted:
        assert api.actions()[0]["keep"] is True
        assert "\rrequested [" in terminal.getvalue()  # a bar redrawn on the terminal


def test_messages_still_pending_after_wait_are_named_and_exit_1(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.matches = ["A", "B", "C"]
    api.progress = lambda ids, poll: {"applied": ["A"], "gone": [], "pending": ["B", "C"]}
    assert run(api, "release", "A", "B", "C", "--wait", "0.2") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["still pending: B, C", "done 1, no longer waiting 0, still pending 2"]


def test_explicit_ids_that_are_not_waiting_are_named_and_counted(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.matches = ["A"]
    api.not_waiting = [{"id": "GONE", "state": "delivered"}, {"id": "NOPE", "state": "unknown"}]
    assert run(api, "delete", "A", "GONE", "NOPE", "--reason", "typo") == 0
    captured = capsys.readouterr()
    assert "not waiting: GONE (delivered), NOPE (unknown)" in captured.err
    assert api.actions()[0]["ids"] == ["A"]
    assert captured.out.splitlines()[-1] == "done 1, no longer waiting 2, still pending 0"


def test_nothing_matching_is_exit_1_and_acts_on_nothing(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(api, "retry", "--sender", "nobody@x.test") == 1
    assert api.actions() == []
    captured = capsys.readouterr()
    assert captured.out == "0 messages match\n"
    assert captured.err == "postline: queue retry: nothing to retry\n"


def test_an_error_answer_is_exit_2_with_the_apis_message(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.error = (400, "give exactly one of ids, all or filters")
    assert run(api, "retry", "--all") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("answered 400: give exactly one of ids, all or filters")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["retry"], "give message ids, --all or filters"),
        (["retry", "A", "--all"], "give message ids, --all or filters"),
        (["delete", "A", "--domain", "x.test"], "give message ids, --all or filters"),
        (["retry", "--all", "--keep"], "--keep applies to hold only"),
        (["bounce", "--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["hold", "A", "--wait", "-1"], "--wait must not be negative"),
    ],
)
def test_bad_arguments_are_exit_2_with_one_line_and_ask_nothing(
    api: FakeQueueApi, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert run(api, *argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"postline: queue {argv[0]}: ") and says in line
    assert api.posts == [] and api.gets == []


def test_an_unreachable_api_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    for argv in (["list"], ["retry", "--all"]):
        assert main(["queue", *argv, "--api", url, "--token", "t"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"postline: queue list: cannot reach the audit API at {url}")
    assert lines[1].startswith(f"postline: queue retry: cannot reach the audit API at {url}")
