"""The per-destination limiter caps sessions and gives up after destination_wait."""

from __future__ import annotations

import asyncio

import pytest

from postline.delivery.pool import DestinationBusy, Limiter


async def test_second_session_waits_and_gives_up_after_the_wait() -> None:
    limiter = Limiter(per_destination=1, wait=0.1)
    async with limiter.slot("x.test"):
        with pytest.raises(DestinationBusy):
            async with limiter.slot("x.test"):
                pass  # pragma: no cover
        async with limiter.slot("y.test"):  # other destinations are not affected
            pass


async def test_slot_is_handed_on_when_released() -> None:
    limiter = Limiter(per_destination=1, wait=2)
    order: list[str] = []

    async def user(name: str, hold: float) -> None:
        async with limiter.slot("x.test"):
            order.append(name)
            await asyncio.sleep(hold)

    await asyncio.gather(user("first", 0.05), user("second", 0))
    assert order == ["first", "second"]
