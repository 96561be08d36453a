"""How ``postline doctor`` prints its checks: one line each, hostile text escaped."""

from __future__ import annotations

from postline.app.doctor.report import (
    MAX_TEXT,
    Status,
    any_failed,
    as_json,
    escape,
    failed,
    passed,
    render,
    warned,
)


def test_a_pass_line_has_no_advice() -> None:
    check = passed("broker topology", "14 queues present")
    assert render(check) == "PASS  broker topology: 14 queues present"


def test_warn_and_fail_lines_say_what_to_do() -> None:
    assert render(warned("dns", "slow", "use another resolver")) == (
        "WARN  dns: slow -> use another resolver"
    )
    assert render(failed("mx a.test", "NXDOMAIN", "check the domain")) == (
        "FAIL  mx a.test: NXDOMAIN -> check the domain"
    )


def test_control_characters_from_a_remote_are_escaped() -> None:
    hostile = "220 evil\r\n\x1b[2J\x07\x9b done\x7f"
    line = render(failed("smtp x greeting", hostile, "go\naway"))
    assert "\r" not in line and "\n" not in line and "\x1b" not in line and "\x9b" not in line
    assert "\\x1b[2J\\x07" in line and "\\x0d\\x0a" in line and "\\x7f" in line
    assert "go\\x0aaway" in line


def test_escaping_keeps_printable_unicode_and_cuts_long_text() -> None:
    assert escape("Grüße 日本") == "Grüße 日本"
    long = escape("x" * 1000)
    assert len(long) == MAX_TEXT and long.endswith("...")


def test_json_objects_carry_the_four_fields_escaped() -> None:
    check = failed("users file", "bad\x00name", "fix it")
    assert as_json(check) == {
        "status": "FAIL",
        "check": "users file",
        "found": "bad\\x00name",
        "advice": "fix it",
    }


def test_only_a_failure_fails_the_run() -> None:
    assert not any_failed([passed("a", "ok"), warned("b", "meh", "look")])
    assert any_failed([passed("a", "ok"), failed("c", "broken", "fix")])
    assert Status.FAIL.value == "FAIL"
