"""Parallel AUTH guesses: at most ``auth_max_failures`` passwords are ever checked per key.

Many sessions are made ready (TLS, EHLO) first; then each writes one ``AUTH
PLAIN`` in the same loop turn, so the guesses reach ingress together. Every
password ingress actually checks is recorded by wrapping
``PasswordChecker.verify``; the passwords name the session that sent them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from postline.ingress.users import PasswordChecker, User
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD, Running, plain
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
MAX_FAILURES = 5
BATCH = 25


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password ingress verifies, in order."""
    seen: list[str] = []
    original: Callable[[PasswordChecker, User | None, str], Awaitable[bool]]
    original = PasswordChecker.verify

    async def verify(self: PasswordChecker, user: User | None, password: str) -> bool:
        seen.append(password)
        return await original(self, user, password)

    monkeypatch.setattr(PasswordChecker, "verify", verify)
    return seen


async def ready_session(ingress: Running, source: str, tls: ssl.SSLContext) -> RawClient:
    client = await RawClient.connect(*ingress.plain, source=source)
    await client.ehlo()
    await client.starttls(tls)
    await client.ehlo()
    return client


async def guess_together(ingress: Running, guesses: list[tuple[str, str, str]]) -> list[str]:
    """``(source, user, password)`` each from its own session at once; the replies."""
    tls = client_tls()
    clients: list[RawClient] = []
    for batch in range(0, len(guesses), BATCH):  # set up a few at a time, then guess at once
        sources = [source for source, _, _ in guesses[batch : batch + BATCH]]
        clients += await asyncio.gather(*(ready_session(ingress, s, tls) for s in sources))
    for client, (_, user, password) in zip(clients, guesses, strict=True):
        client.writer.write(f"AUTH PLAIN {plain(user, password)}\r\n".encode())
    replies = await asyncio.gather(*(client.reply(90) for client in clients))
    await asyncio.gather(*(client.close() for client in clients))
    return [reply.text for reply in replies]


async def start(
    start_ingress: StartIngress, tls_settings: dict[str, Any], max_failures: int = MAX_FAILURES
) -> Running:
    return await start_ingress(
        **{**tls_settings, "auth_max_failures": max_failures, "max_sessions_per_ip": 100}
    )


async def test_fifty_parallel_guesses_from_one_address_check_at_most_max_failures(
    start_ingress: StartIngress, tls_settings: dict[str, Any], checked: list[str]
) -> None:
    ingress = await start(start_ingress, tls_settings)
    passwords = [f"guess-{number}" for number in range(50)]
    passwords[39] = PASSWORD  # the right one is the 40th guess
    replies = await guess_together(
        ingress, [("127.0.0.21", "alice", password) for password in passwords]
    )
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} passwords checked"
    assert replies[39].startswith("454 4.7.0"), f"guess 40 was checked: {replies[39]}"
    assert replies.count("535 5.7.8 Authentication credentials invalid") == len(checked)
    assert all(reply.startswith(("535 5.7.8", "454 4.7.0")) for reply in replies)


async def test_parallel_guesses_from_twenty_addresses_check_at_most_max_failures_each(
    start_ingress: StartIngress, tls_settings: dict[str, Any], checked: list[str]
) -> None:
    ingress = await start(start_ingress, tls_settings, max_failures=2)  # 40 argon2 checks
    guesses = [
        (f"127.0.0.{30 + address}", f"user-{address}-{session}", f"guess-{address}-{session}")
        for address in range(20)
        for session in range(10)
    ]  # a distinct user name per guess: only the per-address budget applies
    replies = await guess_together(ingress, guesses)
    per_address = Counter(password.split("-")[1] for password in checked)
    assert max(per_address.values()) <= 2, f"checked per address: {per_address}"
    assert len(per_address) == 20, "every address got its own budget"
    assert replies.count("535 5.7.8 Authentication credentials invalid") == len(checked)


async def test_parallel_guesses_at_one_user_from_one_network_check_at_most_max_failures(
    start_ingress: StartIngress, tls_settings: dict[str, Any], checked: list[str]
) -> None:
    ingress = await start(start_ingress, tls_settings)
    guesses = [
        (f"127.0.0.{60 + address}", "bob", f"guess-{address}-{session}")
        for address in range(20)
        for session in range(10)
    ]  # 127.0.0.0/24 is one client network for the (user, network) budget
    replies = await guess_together(ingress, guesses)
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} passwords for bob checked"
    assert replies.count("535 5.7.8 Authentication credentials invalid") == len(checked)
    other_network = await ready_session(ingress, "127.0.1.60", client_tls())
    reply = await other_network.command(f"AUTH PLAIN {plain('bob', PASSWORD)}")
    assert reply.code == 235, "bob from another network is not locked out"
    await other_network.close()
