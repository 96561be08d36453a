"""Every ingress reply is a constant with an enhanced code of its own class."""

from __future__ import annotations

from pathlib import Path

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


def test_every_reply_ingress_sends_is_documented_for_operators() -> None:
    """A reply added without a line in docs/ingress.md is a reply operators cannot look up."""
    docs = (Path(__file__).parents[3] / "docs" / "ingress.md").read_text(encoding="utf-8")
    undocumented = [
        f"{name} ({value.code} {value.enhanced})"
        for name, value in CONSTANTS.items()
        if value.enhanced and f"{value.code} {value.enhanced}" not in docs
    ]
    assert not undocumented, f"not in docs/ingress.md: {undocumented}"
