"""CPU-heavy filter work (MIME walks, DKIM hashing, regexes) off the event loop.

``off_loop(work, size)`` runs ``work()`` inline when ``size`` (the bytes it
works on) is at most ``INLINE_SIZE``, which is cheaper than a thread hop, and
otherwise in this module's pool of ``THREADS`` threads. The work holds the GIL,
so more threads would not add throughput; the pool of its own keeps the
default one (audit writes, AUTH checks in ``postline run``) free. A thread
cannot be cancelled: when the message's budget ends the awaiting filter is
cancelled and the thread finishes its bounded work in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
INLINE_SIZE = 64 * 1024
THREADS = 2
_pool = ThreadPoolExecutor(THREADS, thread_name_prefix="postline-filter-work")


async def off_loop(work: Callable[[], T], size: int) -> T:
    """``work()``, inline for small inputs, else in the pool (module docstring)."""
    if size <= INLINE_SIZE:
        return work()
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


async def in_pool(work: Callable[[], T]) -> T:
    """``work()`` in the pool whatever its size (work that is heavy even on small input)."""
    return await asyncio.get_running_loop().run_in_executor(_pool, work)
