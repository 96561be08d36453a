"""``postline trace`` text from the API's JSON: the four steps, in order, then the diagnosis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postline.app.commands.trace import render_all
from postline.app.commands.trace_text import clean, render

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())["messages"]
    return messages


def step_lines(lines: list[str]) -> list[str]:
    return [line.split()[0] + " " + line.split()[1] for line in lines if line[:1].isdigit()]


def test_a_delivered_message_shows_the_four_steps_and_ends_with_its_diagnosis() -> None:
    [message] = fixture("delivered")
    lines = render(message)
    assert step_lines(lines) == ["1 submitted", "2 received", "3 filters", "4 delivered"]
    text = "\n".join(lines)
    assert "client 10.1.2.3, HELO mary-laptop.example.org, authenticated as mary, TLSv1.3" in text
    assert "queue id 4QX7K2M9BDF0HJ3C, 1834 bytes, 2026-03-04 13:50:00 UTC" in text
    assert "filters passed it (headers: continue)" in text
    assert "via mx.businesspartner.com[192.0.2.25]:25, TLSv1.3 TLS_AES_256_GCM_SHA384" in text
    assert (
        "delivered by mx.businesspartner.com[192.0.2.25]:25: 250 2.0.0 Ok: queued as 4QXA1B2C3D"
        in text
    )
    assert lines[-1] == message["diagnosis"]
    assert lines[-1].startswith("Diagnosis: delivered: accepted by mx.businesspartner.com")


def test_every_attempt_of_a_deferred_message_has_its_time_mx_reply_and_next_attempt() -> None:
    [message] = fixture("deferred")
    lines = render(message)
    attempts = [line for line in lines if " attempt " in line and "via" in line]
    assert len(attempts) == 3
    assert attempts[0].strip() == (
        "2026-03-04 13:50:30 UTC  attempt 1 <john@slow.example.net> via "
        "mx1.example.net[192.0.2.7]:25, no TLS: deferred 451 4.4.1 Connection timed out "
        "(connect: timed out); next attempt 2026-03-04 13:55:30 UTC"
    )
    assert "4 not delivered" in lines
    assert lines[-1] == (
        "Diagnosis: destination not responding: connection to mx1.example.net[192.0.2.7]:25 "
        "timed out on 3 attempts; next attempt 14:05 UTC"
    )


def test_a_refusal_shows_the_refused_command_with_its_reply_and_nothing_received() -> None:
    [message] = fixture("refused")
    lines = render(message)
    assert lines[0].startswith("refused submission refused-")
    assert (
        lines[1]
        == "1 submitted          client 10.1.2.3, HELO printer.local, not authenticated, no TLS"
    )
    assert (
        lines[2]
        .strip()
        .endswith(
            "refused RCPT from <scanner@example.org> to <john@businesspartner.com>: "
            "554 5.7.1 Relay access denied [relay_denied]"
        )
    )
    assert "2 received           no: refused at submission, nothing was queued" in lines
    assert lines[-1] == (
        "Diagnosis: refused at submission: client 10.1.2.3 is not in relay_networks and did "
        "not authenticate"
    )


def test_a_coalesced_refusal_says_how_many_it_stands_for() -> None:
    [message] = fixture("refused")
    message["events"][0].update(count=1999, sampled=True, command="AUTH", reason="auth_locked")
    [line] = [line for line in render(message) if "refused AUTH" in line]
    assert "x1999 (repeats counted, the last one shown)" in line


def test_a_refused_auth_names_the_user_it_tried_but_not_as_authenticated() -> None:
    [message] = fixture("refused")
    message["events"][0].update(command="AUTH", reason="auth_failed", auth_user="mary")
    lines = render(message)
    assert "not authenticated" in lines[1]
    assert "refused AUTH as mary" in lines[2]


def test_a_bounce_names_the_dsn_and_to_whom_it_went() -> None:
    [message] = fixture("deferred")
    rcpt = message["recipients"][0]
    rcpt["state"] = "bounced"
    message["events"].append(
        {
            "kind": "bounced",
            "at": "2026-03-04T14:05:31Z",
            "service": "delivery",
            "message_id": message["message_id"],
            "recipient": rcpt["address"],
            "mx": {"name": "mx1.example.net", "ip": "192.0.2.7", "port": 25},
            "reply": {"code": 550, "enhanced": "5.1.1", "text": "User unknown"},
        }
    )
    message["events"].append(
        {
            "kind": "dsn_sent",
            "at": "2026-03-04T14:05:32Z",
            "message_id": message["message_id"],
            "mail_from": "mary@example.org",
            "rcpt_to": [rcpt["address"]],
        }
    )
    text = "\n".join(render(message))
    assert "<john@slow.example.net> bounced by mx1.example.net[192.0.2.7]:25" in text
    assert "DSN sent to <mary@example.org> for <john@slow.example.net>" in text


def test_hostile_values_are_shown_escaped_on_one_line() -> None:
    [message] = fixture("delivered")
    message["subject"] = "hi\r\nDiagnosis: forged\x1b[2J"
    message["submission"]["helo"] = "evil\nhost"
    lines = render(message)
    assert not any(line.startswith("Diagnosis: forged") for line in lines)
    assert all("\x1b" not in line and "\n" not in line and "\r" not in line for line in lines)
    assert '"hi\\r\\nDiagnosis: forged\\x1b[2J"' in lines[0]
    assert clean("tab\there") == "tab\\there"


def test_several_messages_are_printed_in_the_order_given_each_ending_with_a_diagnosis() -> None:
    messages = fixture("refused") + fixture("delivered")
    text = render_all(messages)
    blocks = text.strip("\n").split("\n\n")
    assert [block.splitlines()[-1].split(":")[1].strip() for block in blocks] == [
        "refused at submission",
        "delivered",
    ]
    assert render_all([]) == ""


# -- documents captured from the end-to-end runs (tests/e2e/test_trace_journeys.py) --------


def test_an_expired_message_lists_every_attempt_and_names_the_dsn() -> None:
    [message] = fixture("e2e-expired")
    lines = render(message)
    attempts = [line for line in lines if "  attempt " in line]
    assert [line.split("  attempt ")[1].split()[0] for line in attempts] == list("123456")
    assert all("via mx.refused.test[127.0.0.4]:47481, no TLS: " in line for line in attempts)
    assert all("; next attempt 2026-12-01 23:36:" in line for line in attempts[:-1])
    assert ": expired 451 4.4.1 Host skipped" in attempts[-1]
    assert "4 not delivered" in lines
    assert any(", last tried mx.refused.test[127.0.0.4]:47481: 451 4.4.1" in line for line in lines)
    assert any(
        "DSN sent to <mary@example.org> for <john-09ad4f83@refused.test>" in line for line in lines
    )
    assert lines[-1].startswith("Diagnosis: expired: not delivered within 6s after 6 attempts")


def test_an_nxdomain_bounce_is_an_attempt_that_reached_no_host() -> None:
    [message] = fixture("e2e-nxdomain")
    lines = render(message)
    [attempt] = [line for line in lines if "  attempt " in line]
    assert attempt.endswith(
        "attempt 1 <john-a4e9dbfd@nxdomain.test>, no host reached: bounced 550 5.1.2 Host or "
        "domain name not found: nxdomain.test (DNS lookup failed)"
    )
    assert lines[-1].startswith("Diagnosis: MX record for nxdomain.test not found (NXDOMAIN)")


def test_a_filter_rejection_is_a_step_3_decision_with_the_filters_reply() -> None:
    [message] = fixture("e2e-rejected")
    lines = render(message)
    assert step_lines(lines) == ["1 submitted", "2 received", "3 filters", "4 not"]
    assert any(
        line.endswith(
            "rejected <john-b4c8c2d6@ok.test>: 550 5.7.1 Rejected by the test policy "
            "(rejected by filter reject-tagged: X-Test-Verdict: reject)"
        )
        for line in lines
    )
    assert lines[-1].startswith("Diagnosis: rejected by filter reject-tagged")
