"""SMTP replies as values: parsing and classification."""

from __future__ import annotations

import pytest

from postline.reply import SmtpReply, reply


@pytest.mark.parametrize(
    ("code", "success", "transient", "permanent"),
    [
        (250, True, False, False),
        (354, False, False, False),  # intermediate: "go on", never success
        (334, False, False, False),
        (421, False, True, False),
        (451, False, True, False),
        (452, False, True, False),
        (550, False, False, True),
        (554, False, False, True),
    ],
)
def test_reply_classification_by_first_digit(
    code: int, success: bool, transient: bool, permanent: bool
) -> None:
    value = SmtpReply(code=code, text="x")
    assert (value.is_success, value.is_transient, value.is_permanent) == (
        success,
        transient,
        permanent,
    )


def test_3xx_is_intermediate_and_only_3xx() -> None:
    assert SmtpReply(code=354).is_intermediate and SmtpReply(code=334).is_intermediate
    assert not SmtpReply(code=250).is_intermediate and not SmtpReply(code=421).is_intermediate


@pytest.mark.parametrize(
    ("code", "enhanced", "consistent"),
    [
        (250, None, True),
        (250, "2.0.0", True),
        (451, "4.7.1", True),
        (550, "5.1.1", True),
        (550, "2.0.0", False),
        (250, "5.7.1", False),
        (451, "5.0.0", False),
    ],
)
def test_enhanced_code_must_have_the_replys_class(
    code: int, enhanced: str | None, consistent: bool
) -> None:
    assert SmtpReply(code=code, enhanced=enhanced).is_consistent is consistent


def test_parse_splits_the_enhanced_code_from_the_text() -> None:
    parsed = SmtpReply.parse(550, "5.1.1 <bob@example.org>: Recipient address rejected")
    assert parsed == SmtpReply(
        code=550, enhanced="5.1.1", text="<bob@example.org>: Recipient address rejected"
    )


def test_parse_joins_multiline_replies_and_strips_repeated_codes() -> None:
    parsed = SmtpReply.parse(451, "4.7.1 Greylisted\n4.7.1 try again later")
    assert parsed.enhanced == "4.7.1"
    assert parsed.text == "Greylisted / try again later"


def test_parse_without_an_enhanced_code_keeps_the_text() -> None:
    assert SmtpReply.parse(250, "OK") == SmtpReply(code=250, enhanced=None, text="OK")


def test_str_is_the_wire_form() -> None:
    assert str(reply(554, "5.7.1", "Relay access denied")) == "554 5.7.1 Relay access denied"
    assert str(SmtpReply(code=250)) == "250"


def test_codes_outside_smtp_are_refused() -> None:
    with pytest.raises(ValueError):
        SmtpReply(code=199)
