"""The size, sender and headers filters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from postline.filter.api import Verdict
from postline.filter.headers import HeadersFilter
from postline.filter.sender import SenderFilter
from postline.filter.size import SizeFilter
from tests.unit.filter.helpers import message, plain, settings


def size(**section: Any) -> SizeFilter:
    return SizeFilter(settings(size=section))


@pytest.mark.parametrize(
    ("fields", "section", "verdict"),
    [
        ({}, {"max_size": 100}, Verdict.REJECT),
        ({}, {"max_size": "1MiB"}, Verdict.CONTINUE),
        ({}, {"max_size": 100, "domains": {"company.test": "1MiB"}}, Verdict.CONTINUE),
        ({"mail_from": "a@eu.company.test"}, {"domains": {"company.test": 100}}, Verdict.REJECT),
        ({}, {"domains": {"company.test": "1MiB"}, "users": {"mary": 100}}, Verdict.REJECT),
        ({"auth_user": None}, {"users": {"mary": 100}}, Verdict.CONTINUE),
    ],
)
async def test_the_limit_is_the_users_then_the_domains_then_everyones(
    fields: dict[str, Any], section: dict[str, Any], verdict: Verdict
) -> None:
    assert (await size(**section).apply(message(plain(), **fields))).verdict is verdict


async def test_an_oversized_message_is_rejected_with_552_5_3_4_and_both_sizes() -> None:
    filtered = message(plain())
    decision = await size(users={"mary": 100}).apply(filtered)
    assert str(decision.reply) == "552 5.3.4 Message too big for this sender"
    assert decision.reason == (
        f"message of {len(filtered.to_bytes())} bytes over the 100-byte limit of its user"
    )


def users_file(path: Path, **senders: list[str]) -> Path:
    document = {
        "users": {name: {"password": "$argon2id$x", "senders": s} for name, s in senders.items()}
    }
    path.write_text(tomli_w.dumps(document))
    return path


def sender(**section: Any) -> SenderFilter:
    return SenderFilter(settings(sender=section))


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        ({}, Verdict.CONTINUE),
        ({"From": "Mary <MARY@Company.TEST>"}, Verdict.CONTINUE),
        ({"From": "Director <director@bank.example>"}, Verdict.REJECT),
        ({"From": "mary@company.test, boss@bank.example"}, Verdict.REJECT),
        ({"Sender": "other@bank.example"}, Verdict.REJECT),
        ({"From": "undisclosed recipients"}, Verdict.REJECT),
    ],
)
async def test_from_must_be_the_envelope_sender_without_a_users_file(
    headers: dict[str, str], verdict: Verdict
) -> None:
    assert (await sender().apply(message(plain(**headers)))).verdict is verdict


async def test_with_a_users_file_the_users_senders_and_domains_are_allowed(tmp_path: Path) -> None:
    path = users_file(tmp_path / "users.toml", mary=["mary@company.test", "@brand.test"])
    check = sender(users_file=str(path))
    assert (await check.apply(message(plain(From="news@brand.test")))).verdict is Verdict.CONTINUE
    refused = await check.apply(message(plain(From="Director <director@bank.example>")))
    assert refused.verdict is Verdict.REJECT
    assert refused.reason == "a From: address the sender may not use"
    assert str(refused.reply) == "550 5.7.1 From: address not allowed for this user"
    # an edited file takes effect on the next message
    users_file(path, mary=["mary@company.test", "@bank.example"])
    os.utime(path, ns=(1, 1))
    allowed = await check.apply(message(plain(From="director@bank.example")))
    assert allowed.verdict is Verdict.CONTINUE


async def test_mail_without_auth_passes_unless_asked_for() -> None:
    spoofed = plain(From="director@bank.example")
    assert (await sender().apply(message(spoofed, auth_user=None))).verdict is Verdict.CONTINUE
    strict = sender(unauthenticated=True)
    assert (await strict.apply(message(spoofed, auth_user=None))).verdict is Verdict.REJECT


def headers(**section: Any) -> HeadersFilter:
    return HeadersFilter(settings(headers=section))


async def test_headers_removes_named_fields_and_adds_fixed_ones() -> None:
    filtered = message(plain(X_Originating_IP="[10.1.2.3]"))
    decision = await headers(remove=["x-originating-ip"], add={"X-Relay": "postline"}).apply(
        filtered
    )
    assert "X-Originating-IP" not in filtered.headers
    assert filtered.headers.get("X-Relay") == "postline"
    assert decision.reason.endswith("; removed 1 fields")


async def test_hide_client_leaves_the_clients_name_and_address_out_of_received() -> None:
    filtered = message(plain())
    await headers(hide_client=True).apply(filtered)
    received = filtered.headers.get("Received") or ""
    assert received.startswith("by relay.test (Postline) with ESMTPSA id 4Q8ZT1K2M7XHBN3C")
    assert "192.0.2.7" not in received and "laptop" not in received


def test_a_multi_line_added_value_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="a value is one line"):
        settings(headers={"add": {"X-A": "one\r\nBcc: victim@x.test"}})
