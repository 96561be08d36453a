"""Handing a message on: publishes retried on their own, never the delivery.

Once a remote server has accepted, a requeue would deliver the mail again,
so trouble in the hand-off retries the publish, never the delivery: each
publish that fails is sent again on its own (``HAND_OFF_ATTEMPTS`` times in
all, backing off from ``HAND_OFF_BACKOFF`` seconds), while the bus keeps
waiting for a confirm that is merely late. ``hand_over`` runs a message's
publishes concurrently and then, only once every one is confirmed, its done
marker (``postline.control``): a marker confirmed before the rest would let a
redelivered copy be dropped as handled while part of its hand-off was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from postline.bus import PublishError, all_confirmed

log = logging.getLogger("postline.delivery")
HAND_OFF_ATTEMPTS = 4
HAND_OFF_BACKOFF = 1.0
Publish = Callable[[], Awaitable[None]]


async def hand_over(publishes: Sequence[Publish], message_id: str, done: Publish | None) -> None:
    """Every publish until confirmed (concurrently), then ``done``; raises if one never is."""
    await all_confirmed([hand_off(publish, message_id) for publish in publishes])
    if done is not None:
        await hand_off(done, message_id)


async def hand_off(publish: Publish, message_id: str) -> None:
    """``publish`` until confirmed: retried with backoff, raising after the last attempt."""
    delay = HAND_OFF_BACKOFF
    for attempt in range(1, HAND_OFF_ATTEMPTS + 1):
        try:
            await publish()
            return
        except PublishError as error:
            if attempt == HAND_OFF_ATTEMPTS:
                raise
            log.warning(
                "hand-off publish failed (%s); trying it again in %gs, not the delivery",
                error,
                delay,
                extra={"message_id": message_id},
            )
        await asyncio.sleep(delay)
        delay *= 2
