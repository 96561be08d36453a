"""The pool hands each idle session to one transaction at a time, reaper or not.

And never one that is out of step (input arrived that no command asked for).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

import aiosmtplib
import pytest

from postline.delivery import pool as pool_module
from postline.delivery.connection import Connection, Target
from postline.delivery.pool import Pool
from postline.delivery.sender import SessionConfig
from postline.delivery.smtpclient import StrictSMTP

TARGET = Target("mx.test", "192.0.2.1", 25)


class FakeSmtp:
    """Just enough of ``StrictSMTP`` for the pool: RSET may wait, then fail."""

    def __init__(self, rset_fails: bool = False) -> None:
        self.is_connected = True
        self.in_step = True
        self.rsets = 0
        self.rset_fails = rset_fails
        self.rset_started = asyncio.Event()
        self.rset_may_answer = asyncio.Event()
        if not rset_fails:
            self.rset_may_answer.set()

    async def rset(self, timeout: float | None = None) -> aiosmtplib.SMTPResponse:
        self.rsets += 1
        self.rset_started.set()
        await self.rset_may_answer.wait()
        if self.rset_fails:
            self.is_connected = False
            raise aiosmtplib.SMTPServerDisconnected("gone")
        return aiosmtplib.SMTPResponse(250, "OK")

    async def quit(self, timeout: float | None = None) -> None:
        self.is_connected = False

    def close(self) -> None:
        self.is_connected = False


def session(smtp: FakeSmtp) -> Connection:
    return Connection(TARGET, cast(StrictSMTP, smtp))


@pytest.fixture
def pool() -> Pool:
    context = ssl.create_default_context()
    config = SessionConfig("relay.test", 5, context, context)
    return Pool(config, max_per_connection=100, idle_timeout=60, max_idle=10)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Connection]:
    """Sessions the pool opened (no network: each is a new ``FakeSmtp``)."""
    sessions: list[Connection] = []

    async def open_session(target: Target, config: SessionConfig) -> Connection:
        sessions.append(session(FakeSmtp()))
        return sessions[-1]

    monkeypatch.setattr(pool_module, "open_session", open_session)
    return sessions


async def test_reaping_while_a_session_answers_rset_never_hands_one_out_twice(
    pool: Pool, opened: list[Connection]
) -> None:
    kept, dying_smtp = session(FakeSmtp()), FakeSmtp(rset_fails=True)
    pool.release(kept, True)
    pool.release(session(dying_smtp), True)  # the newest idle session is tried first
    first = asyncio.create_task(pool.acquire(TARGET))
    await asyncio.wait_for(dying_smtp.rset_started.wait(), 5)
    pool.reap()  # nothing is stale: every idle session stays
    second, reused = await pool.acquire(TARGET)
    assert second is kept and reused
    dying_smtp.rset_may_answer.set()  # the first acquire's RSET fails: it moves on
    connection, reused = await asyncio.wait_for(first, 5)
    assert connection is opened[0] and not reused, "one idle session was handed out twice"
    await pool.close()


async def test_session_released_while_another_acquire_waits_for_rset_is_not_lost(
    pool: Pool, opened: list[Connection]
) -> None:
    dying_smtp = FakeSmtp(rset_fails=True)
    pool.release(session(dying_smtp), True)
    first = asyncio.create_task(pool.acquire(TARGET))
    await asyncio.wait_for(dying_smtp.rset_started.wait(), 5)
    second, reused = await pool.acquire(TARGET)  # nothing idle left: a new session
    assert second is opened[0] and not reused
    pool.release(second, True)
    dying_smtp.rset_may_answer.set()
    connection, reused = await asyncio.wait_for(first, 5)
    assert connection is second and reused, "the released session was dropped from the pool"
    await pool.close()


async def test_idle_session_that_got_unsolicited_input_is_closed_without_rset(
    pool: Pool, opened: list[Connection]
) -> None:
    spoiled_smtp = FakeSmtp()
    pool.release(session(spoiled_smtp), True)
    spoiled_smtp.in_step = False  # e.g. a second reply to the final dot, arriving late
    connection, reused = await pool.acquire(TARGET)
    assert connection is opened[0] and not reused
    assert spoiled_smtp.rsets == 0, "an out-of-step session was sent RSET"
    await pool.close()
    assert not spoiled_smtp.is_connected


async def test_session_out_of_step_when_released_is_not_kept(
    pool: Pool, opened: list[Connection]
) -> None:
    spoiled_smtp = FakeSmtp()
    spoiled_smtp.in_step = False
    pool.release(session(spoiled_smtp), True)
    assert pool.idle_count == 0
    await pool.close()
    assert not spoiled_smtp.is_connected


async def test_reaper_closes_an_idle_session_that_went_out_of_step(
    pool: Pool, opened: list[Connection]
) -> None:
    spoiled_smtp = FakeSmtp()
    pool.release(session(spoiled_smtp), True)
    spoiled_smtp.in_step = False
    pool.reap()
    assert pool.idle_count == 0
    await pool.close()
