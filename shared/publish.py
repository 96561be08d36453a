"""How a publish ended: confirmed, certainly not queued, or unknown (sent, no confirm yet).

``confirmed(task, sent, deadline, patient=...)`` waits for a publish task the
bus started (``sent`` is set once the message may have reached the broker):

* not sent within ``min(deadline, SEND_WAIT)`` (no connection to send on):
  the task is cancelled and ``PublishError`` raised: certainly not queued;
* sent, no confirm within ``deadline``: ``patient`` callers (workers) wait on,
  up to ``LATE_CONFIRM_FACTOR`` times as long in all; impatient ones (ingress,
  whose client waits for its reply) get ``PublishUnconfirmed`` at once, whose
  ``confirmed()`` later tells how the publish ended;
* a nack or a returned (unroutable) message: ``PublishError``; any other
  failure after sending: ``PublishUnconfirmed`` (it may be queued).

A sent publish is never cancelled at the deadline: the broker may still take
it, and cancelling would only hide that. ``all_confirmed`` awaits several
publishes before raising the first failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import aio_pika

log = logging.getLogger("postline.bus")

LATE_CONFIRM_FACTOR = 5
"""A sent publish is awaited up to this many ``publish_timeout`` in all, then given up."""
SEND_WAIT = 10.0
"""Longest wait (s) for a connection to send on: a broker that is down fails a publish this fast."""


class PublishError(Exception):
    """The broker did not confirm the publish; nothing can be promised to anyone."""


class PublishUnconfirmed(PublishError):
    """Sent, but not confirmed: the broker may have queued it, or may yet."""

    def __init__(self, reason: str, late: asyncio.Task[None] | None = None) -> None:
        super().__init__(reason)
        self._late = late

    async def confirmed(self) -> bool:
        """True once a publish still in flight is confirmed after all; False if it never is."""
        if self._late is None:
            return False
        await asyncio.wait({self._late})
        return not self._late.cancelled() and self._late.exception() is None


async def confirmed(
    task: asyncio.Task[None], sent: asyncio.Event, deadline: float, *, patient: bool
) -> None:
    """Return once ``task`` (a publish) is confirmed; else raise (module docstring)."""
    try:
        unsent = min(deadline, SEND_WAIT)
        done, _ = await asyncio.wait({task}, timeout=unsent)
        if not done and not sent.is_set():
            task.cancel()
            raise PublishError(f"no confirm from the broker within {unsent:g}s: not sent")
        if not done:
            done, _ = await asyncio.wait({task}, timeout=deadline - unsent)
        if not done and not patient:
            why = f"no confirm from the broker within {deadline:g}s; it may be queued"
            raise PublishUnconfirmed(why, task)
        if not done:
            log.warning("no confirm from the broker within %gs; waiting on", deadline)
            await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    _raise_unless_confirmed(task, sent.is_set(), deadline * LATE_CONFIRM_FACTOR)


def _raise_unless_confirmed(task: asyncio.Task[None], sent: bool, bound: float) -> None:
    """Return if the finished publish was confirmed; else raise as the module docstring says."""
    error = None if task.cancelled() else task.exception()
    if error is None and not task.cancelled():
        return
    if isinstance(error, aio_pika.exceptions.DeliveryError):
        reason = "unroutable (returned)" if error.message is not None else "nacked"
        raise PublishError(f"broker refused the message: {reason}")
    if error is None:
        what = "publish cancelled"
    elif isinstance(error, TimeoutError):
        what = f"no confirm from the broker within {bound:g}s"
    else:
        what = f"publish failed: {type(error).__name__}: {error}"
    raise PublishUnconfirmed(f"{what}; it may be queued") if sent else PublishError(what)


async def all_confirmed(publishes: list[Awaitable[None]]) -> None:
    """Await every publish, then raise the first failure (if any).

    A handler that raises while a sibling publish is still in flight would be
    requeued with that publish still landing; waiting for all of them first
    keeps "what was published" and "what the handler reported" the same.
    """
    results = await asyncio.gather(*publishes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
