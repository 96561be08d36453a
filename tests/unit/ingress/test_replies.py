"""Every ingress reply is a constant with an enhanced code of its own class."""

from __future__ import annotations

from postline.ingress import replies
from postline.reply import SmtpReply

CONSTANTS = {name: value for name, value in vars(replies).items() if isinstance(value, SmtpReply)}
NO_ENHANCED = {"START_DATA"}  # 354 has no class digit in RFC 3463


def test_every_reply_carries_an_enhanced_code_of_its_class() -> None:
    assert len(CONSTANTS) > 40
    for name, value in CONSTANTS.items():
        if name in NO_ENHANCED:
            assert value.enhanced is None
            continue
        assert value.enhanced is not None, name
        assert value.enhanced[0] == str(value.code)[0], name
        assert SmtpReply.parse(value.code, str(value)[4:]) == value, name


def test_no_reply_is_a_bare_500_error() -> None:
    for name, value in CONSTANTS.items():
        assert "Error:" not in value.text, name


def test_contract_replies() -> None:
    assert str(replies.RELAY_DENIED).startswith("554 5.7.1")
    assert str(replies.TRY_AGAIN).startswith("451 4.3.0")
    assert str(replies.AUTH_NEEDS_TLS).startswith("538 5.7.11")
    assert str(replies.AUTH_INVALID).startswith("535 5.7.8")
    assert str(replies.SENDER_NOT_OWNED).startswith("553 5.7.1")
    assert str(replies.TOO_MANY_RECIPIENTS).startswith("452 4.5.3")
    assert str(replies.TOO_BIG).startswith("552 5.3.4")
    assert str(replies.RATE_LIMITED).startswith("450 4.7.1")
    assert str(replies.SHUTTING_DOWN).startswith("421 4.3.2")
    assert str(replies.queued("ABC")) == "250 2.0.0 Ok: queued as ABC"
