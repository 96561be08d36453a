"""The rules filter: every target, substring and RE2 regex, first match decides, linear time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from postline.filter.api import Verdict
from postline.filter.rules import RulesFilter
from tests.unit.filter.helpers import alternative, message, plain, settings, with_attachment


def rules(*rule: dict[str, Any], **section: Any) -> RulesFilter:
    return RulesFilter(settings(rules={"rule": list(rule), **section}))


def rule(on: str, verdict: str = "reject", reason: str = "matched", **test: Any) -> dict[str, Any]:
    return {"on": on, "verdict": verdict, "reason": reason, **test}


@pytest.mark.parametrize(
    ("definition", "fields", "matches"),
    [
        (rule("header:Subject", contains="INVOICE"), {}, True),  # case-insensitive by default
        (rule("header:Subject", contains="INVOICE", ignore_case=False), {}, False),
        (rule("sender", regex=r"^mary@company\.test$"), {}, True),
        (rule("sender", contains="bob"), {}, False),
        (rule("recipient", contains="@partner.test"), {"rcpt_to": ("a@x.test", "j@partner.test")},
         True),
        (rule("auth_user", regex="^mary$"), {}, True),
        (rule("auth_user", contains="mary"), {"auth_user": None}, False),
        (rule("client_ip", network=["192.0.2.0/24"]), {}, True),
        (rule("client_ip", network=["192.0.2.0/24"]), {"client_ip": "::ffff:192.0.2.9"}, True),
        (rule("client_ip", network=["10.0.0.0/8"]), {}, False),
    ],
)  # fmt: skip
async def test_each_target_is_tested_as_configured(
    definition: dict[str, Any], fields: dict[str, Any], matches: bool
) -> None:
    decision = await rules(definition).apply(message(plain(Subject="Your invoice"), **fields))
    assert (decision.verdict is Verdict.REJECT) is matches


async def test_the_first_matching_rule_decides_with_its_reason_and_reply() -> None:
    filtered = message(plain(Subject="Your invoice"))
    decision = await rules(
        rule("sender", "accept", "trusted sender", contains="nobody"),
        rule("header:Subject", "defer", "held for review", contains="invoice",
             reply="451 4.7.1 Held for review"),
        rule("header:Subject", "reject", "never reached", contains="invoice"),
    ).apply(filtered)  # fmt: skip
    assert decision.verdict is Verdict.DEFER and decision.reason == "held for review"
    assert str(decision.reply) == "451 4.7.1 Held for review"


async def test_encoded_header_words_are_decoded_before_matching() -> None:
    filtered = message(plain(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe_und_Rechnung?="))
    decision = await rules(rule("header:Subject", contains="grüße")).apply(filtered)
    assert decision.verdict is Verdict.REJECT


async def test_text_rules_see_decoded_text_parts_not_attachments() -> None:
    body = alternative(text="Please wire the money\n", html="<p>Please w&#105;re</p>\n")
    wire = rule("text", "discard", "fraud", regex=r"wire\s+the\s+money")
    assert (await rules(wire).apply(message(body))).verdict is Verdict.DISCARD
    attached = with_attachment("note.txt", b"wire the money", "text", "plain")
    assert (await rules(wire).apply(message(attached))).verdict is Verdict.CONTINUE


async def test_quoted_printable_and_base64_text_is_matched_decoded() -> None:
    data = (
        b"From: mary@company.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nsecret pro=\r\nject caf=C3=A9\r\n"
    )
    filtered = message(data)
    assert (await rules(rule("text", contains="secret project café")).apply(filtered)).verdict is (
        Verdict.REJECT
    )


async def test_a_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    """(a+)+$ against 'aaaa...b' takes exponential time with Python's re; RE2 is linear."""
    text = "a" * 200_000 + "b"
    filtered = message(plain(text + "\n"))
    started = time.perf_counter()
    decision = await rules(rule("text", regex=r"(a+)+$")).apply(filtered)
    assert decision.verdict is Verdict.CONTINUE
    assert time.perf_counter() - started < 1.0


async def test_text_beyond_max_text_size_is_not_looked_at() -> None:
    filtered = message(plain("x" * 5000 + " needle\n"))
    decision = await rules(rule("text", contains="needle"), max_text_size=1024).apply(filtered)
    assert decision.verdict is Verdict.CONTINUE


def test_a_reply_that_does_not_fit_the_verdict_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="a discard rule takes no reply"):
        rules(rule("sender", "discard", contains="x", reply="550 5.7.1 no"))
    with pytest.raises(ValueError, match="a DEFER needs a 4xx reply"):
        rules(rule("sender", "defer", contains="x", reply="550 5.7.1 no"))
