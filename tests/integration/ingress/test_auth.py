"""AUTH reply matrix, brute-force lockout and sender ownership, over real TLS sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from postline.ingress.users import add_user
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD, Running, b64, plain
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration


async def tls_session(ingress: Running, source: str = "127.0.0.5") -> RawClient:
    client = await RawClient.connect(*ingress.plain, source=source)
    await client.ehlo()
    await client.starttls(client_tls())
    await client.ehlo()
    return client


async def test_auth_reply_matrix(start_ingress: StartIngress, tls_settings: dict[str, Any]) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await tls_session(ingress)
    cases = [
        (f"AUTH PLAIN {plain('alice', 'wrong')}", "535 5.7.8"),
        (f"AUTH PLAIN {plain('nobody', PASSWORD)}", "535 5.7.8"),
    ]
    for command, expected in cases:
        assert (await client.command(command)).text.startswith(expected), command
    await client.close()
    client = await tls_session(ingress)  # two failures so far; a fresh session
    for command, expected in [
        ("AUTH PLAIN not*base64", "501 5.5.2"),
        (f"AUTH PLAIN {b64('no-nul-separators')}", "501 5.5.2"),
        (f"AUTH PLAIN {plain('alice', PASSWORD, authzid='bob')}", "501 5.5.2"),
        ("AUTH CRAM-MD5", "504 5.5.4"),
        ("AUTH", "501 5.5.4"),
    ]:
        assert (await client.command(command)).text.startswith(expected), command
    assert (await client.command("AUTH PLAIN")).code == 334
    assert (await client.command("*")).text.startswith("501 5.7.0")
    assert (await client.command("AUTH LOGIN")).lines == (b64("Username:"),)
    assert (await client.command("*")).text.startswith("501 5.7.0")
    assert (await client.command("AUTH LOGIN")).code == 334
    assert (await client.command(b64("alice"))).lines == (b64("Password:"),)
    assert (await client.command(b64(PASSWORD))).text == "235 2.7.0 Authentication successful"
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).text.startswith(
        "503 5.5.1"
    )
    await client.close()


async def test_auth_sequence_errors(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **tls_settings)
    client = await RawClient.connect(*ingress.implicit, tls=client_tls())
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).text.startswith(
        "503 5.5.1"
    ), "AUTH before EHLO"
    assert (await client.command("HELO client.test")).code == 250
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).text.startswith(
        "503 5.5.1"
    ), "AUTH after HELO (not ESMTP)"
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).text.startswith(
        "503 5.5.1"
    ), "AUTH inside a transaction"
    await client.close()


def _metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_repeated_failures_lock_the_client_out_with_a_metric(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(auth_max_failures=3, auth_lockout="1h", **tls_settings)
    lockouts = _metric("postline_ingress_auth_lockouts_total", {"scope": "ip"})
    client = await tls_session(ingress)
    for _ in range(2):
        assert (await client.command(f"AUTH PLAIN {plain('alice', 'guess')}")).code == 535
    client = await tls_session(ingress)
    assert (await client.command(f"AUTH PLAIN {plain('bob', 'guess')}")).code == 535
    locked = await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert locked.text.startswith("454 4.7.0"), "even the right password is refused while locked"
    assert _metric("postline_ingress_auth_lockouts_total", {"scope": "ip"}) == lockouts + 1
    other = await tls_session(ingress, source="127.0.0.6")
    ok = await other.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert ok.code == 235, "another client address is not locked"
    await client.close()
    await other.close()


async def test_failures_for_one_user_lock_that_user_only_from_that_client_network(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(auth_max_failures=2, auth_lockout="1h", **tls_settings)
    lockouts = _metric("postline_ingress_auth_lockouts_total", {"scope": "user"})
    for source in ("127.0.0.7", "127.0.0.8"):  # a stranger in 127.0.0.0/24
        client = await tls_session(ingress, source)
        assert (await client.command(f"AUTH PLAIN {plain('bob', 'guess')}")).code == 535
        await client.close()
    assert _metric("postline_ingress_auth_lockouts_total", {"scope": "user"}) == lockouts + 1
    client = await tls_session(ingress, "127.0.0.9")
    assert (await client.command(f"AUTH PLAIN {plain('bob', PASSWORD)}")).code == 454
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).code == 235
    await client.close()
    usual = await tls_session(ingress, "127.0.1.9")  # bob's own network
    assert (await usual.command(f"AUTH PLAIN {plain('bob', PASSWORD)}")).code == 235
    await usual.close()


async def test_failures_for_a_user_from_many_networks_slow_it_down_but_never_lock_it(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(
        **{**tls_settings, "auth_max_failures": 2, "auth_failure_delay": "0.1s"}
    )
    for network in range(1, 5):  # one failure each from four /24s: no pair is locked
        client = await tls_session(ingress, f"127.0.{network}.7")
        assert (await client.command(f"AUTH PLAIN {plain('bob', 'guess')}")).code == 535
        await client.close()
    client = await tls_session(ingress, "127.0.9.7")
    started = asyncio.get_running_loop().time()
    assert (await client.command(f"AUTH PLAIN {plain('bob', PASSWORD)}")).code == 235
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.8, f"four recent failures: 0.1 s doubled three times, not {waited:.2f}"
    await client.close()


async def test_a_success_does_not_give_an_address_more_guesses(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(auth_max_failures=3, auth_lockout="1h", **tls_settings)
    client = await tls_session(ingress, "127.0.2.5")
    for name in ("carol", "dave"):  # a different name each time: only the address counts
        assert (await client.command(f"AUTH PLAIN {plain(name, 'guess')}")).code == 535
    await client.close()
    client = await tls_session(ingress, "127.0.2.5")
    assert (await client.command(f"AUTH PLAIN {plain('bob', PASSWORD)}")).code == 235
    await client.close()
    client = await tls_session(ingress, "127.0.2.5")
    assert (await client.command(f"AUTH PLAIN {plain('erin', 'guess')}")).code == 535
    locked = await client.command(f"AUTH PLAIN {plain('frank', 'guess')}")
    assert locked.text.startswith("454 4.7.0"), "three failures from the address lock it"
    await client.close()


async def test_undecodable_auth_responses_get_501_and_count_as_auth_failures(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    internal_errors = _metric("postline_ingress_internal_errors_total", {})
    client = await tls_session(ingress)
    await client.send(b"AUTH PLAIN \xff\xfe\r\n")
    first = await client.reply()
    assert first.text == "501 5.5.2 Cannot decode response", "raw bytes as initial response"
    assert (await client.command("AUTH LOGIN")).code == 334
    await client.send(b"\xff\xfe\r\n")
    assert (await client.reply()).text.startswith("501 5.5.2"), "raw bytes as a challenge answer"
    await client.send(b"AUTH LOGIN \xc3\xa9\r\n")
    final = await client.reply()
    assert final.text.startswith("421 4.7.0"), "the third undecodable response ends the session"
    assert await client.closed()
    assert _metric("postline_ingress_internal_errors_total", {}) == internal_errors


async def test_undecodable_auth_responses_count_toward_max_errors(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(max_errors=2, **tls_settings)
    client = await tls_session(ingress)
    await client.send(b"AUTH PLAIN \xff\xfe\r\n")
    assert (await client.reply()).text.startswith("501 5.5.2")
    await client.send(b"AUTH PLAIN \xff\xfe\r\n")
    assert (await client.reply()).text.startswith("501 5.5.2")
    assert (await client.reply()).text.startswith("421 4.7.0 Too many errors")
    assert await client.closed()


async def test_three_failures_in_one_session_end_it(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await tls_session(ingress)
    for _ in range(2):
        assert (await client.command(f"AUTH PLAIN {plain('alice', 'nope')}")).code == 535
    final = await client.command(f"AUTH PLAIN {plain('alice', 'nope')}")
    assert final.text.startswith("421 4.7.0")
    assert await client.closed()


async def test_failed_auth_is_answered_only_after_the_delay(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**{**tls_settings, "auth_failure_delay": "0.5s"})
    client = await tls_session(ingress)
    started = asyncio.get_running_loop().time()
    assert (await client.command(f"AUTH PLAIN {plain('alice', 'nope')}")).code == 535
    assert asyncio.get_running_loop().time() - started >= 0.5
    await client.close()


async def test_authenticated_user_may_only_send_as_listed_senders(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await tls_session(ingress)
    assert (await client.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).code == 235
    for sender in ("<bob@example.org>", "<>", "<alice@sub.alice.test>", "<alice@example.org.evil>"):
        reply = await client.command(f"MAIL FROM:{sender}")
        assert reply.text == "553 5.7.1 Sender address not owned by authenticated user", sender
    for sender in ("<alice@example.org>", "<ALICE@Example.Org>", "<anyone@alice.test>"):
        assert (await client.command(f"MAIL FROM:{sender}")).code == 250, sender
        assert (await client.command("RSET")).code == 250
    await client.close()


async def test_users_file_changes_apply_to_sender_ownership_without_restart(
    start_ingress: StartIngress, tls_settings: dict[str, Any], tmp_path: Path
) -> None:
    users = tmp_path / "users.toml"
    add_user(users, "carol", PASSWORD, ["carol@example.org"])
    ingress = await start_ingress(**{**tls_settings, "users_file": str(users)})
    client = await tls_session(ingress)
    assert (await client.command(f"AUTH PLAIN {plain('carol', PASSWORD)}")).code == 235
    assert (await client.command("MAIL FROM:<carol@new.example>")).code == 553
    add_user(users, "carol", PASSWORD, ["carol@example.org", "@new.example"])
    assert (await client.command("MAIL FROM:<carol@new.example>")).code == 250
    await client.close()
