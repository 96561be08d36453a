"""``queue_text``: the list's table, the ages, the progress bar (pure, or on a StringIO)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from postline.app.commands.queue_text import Progress, compact, summary, table

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_the_table_aligns_every_column_but_the_last_and_shows_only_waiting_recipients() -> None:
    message = {
        "message_id": "2Q51WJ56RBSLSKJJ5",
        "state": "deferred",
        "mail_from": "",
        "received_at": (NOW - timedelta(seconds=7980)).isoformat(),
        "recipients": [
            {"address": "done@x.test", "state": "delivered", "attempts": 1},
            {
                "address": "a@x.test",
                "state": "deferred",
                "attempts": 4,
                "reply": {"code": 452, "enhanced": "4.2.2", "text": "Mailbox full"},
                "next_attempt_at": (NOW - timedelta(seconds=5)).isoformat(),
            },
        ],
    }
    other = {**message, "message_id": "X", "mail_from": "long.sender.name@example.org"}
    head, first, second = table([summary(message, NOW), summary(other, NOW)], NOW)
    assert head.index("SENDER") == first.index("<>") == second.index("<long")
    assert head.index("LAST REPLY") == first.index("452 4.2.2 Mailbox full")
    assert first.split()[:5] == ["2Q51WJ56RBSLSKJJ5", "2h13m", "4", "due", "<>"]
    assert "done@x.test" not in first


def test_the_progress_bar_redraws_on_a_terminal_and_prints_quarters_elsewhere() -> None:
    tty = Terminal()
    bar = Progress(tty, 200)
    for done in range(0, 201, 50):
        bar.update("applied", done)
    bar.finish()
    assert tty.getvalue().count("\r") == 5 and tty.getvalue().endswith("] 200/200\n")
    log = io.StringIO()
    plain = Progress(log, 1000)
    for done in range(0, 1001, 10):
        plain.update("requested", done)
    assert log.getvalue().splitlines() == [
        "requested 0/1000",
        "requested 250/1000",
        "requested 500/1000",
        "requested 750/1000",
        "requested 1000/1000",
    ]


def test_ages_are_shown_in_their_two_largest_units() -> None:
    assert [compact(s) for s in (0, 42, 312, 7980, 277200, -5)] == [
        "0s",
        "42s",
        "5m12s",
        "2h13m",
        "3d5h",
        "0s",
    ]
