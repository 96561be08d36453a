"""MTA-STS policy texts, TXT records and MX patterns (RFC 8461 3.1, 3.2, 4.1)."""

from __future__ import annotations

import pytest

from postline.delivery.mtasts import PolicyInvalid, StsPolicy, parse_policy, policy_id

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 604800\r\n"
)


def test_a_policy_is_parsed_with_its_mx_patterns() -> None:
    policy = parse_policy(POLICY, "20240101")
    assert policy == StsPolicy("20240101", "enforce", ("mail.example.com", "*.example.net"), 604800)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("mail.example.com", True),
        ("MAIL.Example.COM.", True),
        ("mx1.example.net", True),
        ("example.net", False),  # the wildcard needs exactly one label
        ("a.b.example.net", False),
        ("mail.example.com.evil.test", False),
    ],
)
def test_mx_patterns_match_as_rfc_8461_says(host: str, allowed: bool) -> None:
    assert parse_policy(POLICY, "1").allows(host) is allowed


@pytest.mark.parametrize(
    "text",
    [
        POLICY.replace("STSv1", "STSv2"),
        POLICY.replace("enforce", "strict"),
        POLICY.replace("604800", "forever"),
        "version: STSv1\nmode: enforce\nmax_age: 60\n",  # no mx
    ],
)
def test_invalid_policies_are_refused(text: str) -> None:
    with pytest.raises(PolicyInvalid):
        parse_policy(text, "1")


def test_max_age_is_capped_at_a_year() -> None:
    assert parse_policy(POLICY.replace("604800", "99999999"), "1").max_age == 31_557_600


@pytest.mark.parametrize(
    ("records", "found"),
    [
        (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        (["v=spf1 -all", "v=STSv1; id=abc"], "abc"),
        (["v=STSv1; id=a", "v=STSv1; id=b"], None),  # two records: no policy
        (["v=STSv1; id=not valid!"], None),
        ([], None),
    ],
)
def test_the_txt_record_names_the_policy_id(records: list[str], found: str | None) -> None:
    assert policy_id(records) == found
