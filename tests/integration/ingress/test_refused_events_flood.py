"""A client hammering AUTH is a handful of refused events whose counts add up, in bounded memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import pytest

from postline.ingress import refusals as refusals_module
from postline.models import Event, EventKind
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import Running, plain
from tests.support.broker import wait_until
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
ATTEMPTS = 2000
PER_SESSION = 3  # the third AUTH failure ends a session with 421
FLOODER = "127.0.0.5"
TLS = client_tls()  # one context: building one loads the CA store, slower than a session


async def guess(ingress: Running, attempts: int) -> None:
    """One session of ``attempts`` wrong AUTH PLAIN guesses."""
    client = await RawClient.connect(*ingress.plain, source=FLOODER)
    await client.ehlo()
    await client.starttls(TLS)
    await client.ehlo()
    for n in range(attempts):
        reply = await client.command(f"AUTH PLAIN {plain('alice', f'guess{n}')}")
        assert reply.code in (535, 454, 421), reply
    await client.close()


async def flood(ingress: Running, attempts: int, parallel: int = 8) -> None:
    sessions = [PER_SESSION] * (attempts // PER_SESSION)
    if attempts % PER_SESSION:
        sessions.append(attempts % PER_SESSION)
    gate = asyncio.Semaphore(parallel)

    async def one(count: int) -> None:
        async with gate:
            await guess(ingress, count)

    await asyncio.gather(*(one(count) for count in sessions))


async def test_2000_failed_auth_attempts_are_a_few_events_counting_2000_in_bounded_memory(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**{**tls_settings, "auth_failure_delay": "0s"})
    recorder = ingress.service.handler.refusals
    await flood(ingress, 50)  # warm up: the slots, the publisher and TLS are all in use once
    tracemalloc.start()
    try:
        before = _held_by_refusals()
        await flood(ingress, ATTEMPTS - 50)
        grown = _held_by_refusals() - before
    finally:
        tracemalloc.stop()
    assert recorder.open_slots <= 3  # one per (client, AUTH, reason), however many attempts
    assert recorder.waiting <= 3
    assert grown < 64 * 1024, f"refusals grew by {grown} bytes during the flood"

    await ingress.service.handler.refusals.close(5)  # end the open windows now
    seen: list[Event] = []

    async def all_counted() -> bool:
        seen.extend(e for e in await ingress.events() if e.kind is EventKind.REFUSED)
        return sum(e.count or 0 for e in seen) >= ATTEMPTS

    await wait_until(all_counted, 20, f"refused events counting {ATTEMPTS} attempts")
    assert sum(e.count or 0 for e in seen) == ATTEMPTS
    assert {e.reason for e in seen} <= {"auth_failed", "auth_locked"}
    assert {e.client_ip for e in seen} == {FLOODER}
    assert len(seen) <= 20, f"{len(seen)} events for one client's flood"
    assert any(e.sampled for e in seen)


def _held_by_refusals() -> int:
    """Bytes currently allocated from code in ``postline.ingress.refusals``."""
    path = refusals_module.__file__
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, path)])
    return sum(stat.size for stat in snapshot.statistics("filename"))
