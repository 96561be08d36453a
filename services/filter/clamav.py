"""Built-in filter ``clamav``: the message through clamd's ``INSTREAM`` (TCP or Unix socket).

The protocol (clamd(8)): send ``zINSTREAM\\0``, then the message in chunks,
each a 4-byte big-endian length and that many bytes, then a zero length;
clamd answers one NUL-terminated line: ``stream: OK``, ``stream: NAME
FOUND`` or ``... ERROR``. A found virus answers ``[filter.clamav] verdict``
(reject with ``reply``, or discard), the reason naming the signature
(reduced to printable ASCII). Everything else that is not ``OK`` (clamd
unreachable, too slow for ``timeout``, an ``ERROR`` such as the size limit,
a message over ``max_size``) is a scan error: ``on_error = "defer"`` defers
the message (fail closed), ``"accept"`` lets it go on unscanned (fail open);
both are counted in ``postline_filter_scanner_errors_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from postline.filter import metrics
from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.values import HostPort

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

log = logging.getLogger("postline.filter.clamav")
MAX_ANSWER = 4096
_UNSAFE = re.compile(r"[^\x20-\x7e]")


class ScanError(Exception):
    """The scan could not be made; the text says why (for the logs and the reason)."""


async def instream(target: HostPort | Path, data: bytes, chunk_size: int, timeout: float) -> str:
    """clamd's answer for ``data`` (without ``stream: ``), within ``timeout``; ``ScanError``."""
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(target, data, chunk_size)
    except TimeoutError:
        raise ScanError(f"no answer within {timeout:g}s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        raise ScanError(f"{type(error).__name__}: {error}") from None


async def _exchange(target: HostPort | Path, data: bytes, chunk_size: int) -> str:
    if isinstance(target, Path):
        reader, writer = await asyncio.open_unix_connection(str(target))
    else:
        reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(b"zINSTREAM\0")
        for start in range(0, len(data), chunk_size):
            chunk = data[start : start + chunk_size]
            writer.write(struct.pack("!I", len(chunk)) + chunk)
            await writer.drain()
        writer.write(struct.pack("!I", 0))
        await writer.drain()
        answer = await reader.readuntil(b"\0")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if len(answer) > MAX_ANSWER:
        raise ScanError("an answer too long")
    return answer.rstrip(b"\0").decode("ascii", "replace").removeprefix("stream:").strip()


class ClamavFilter:
    """See the module docstring."""

    name = "clamav"

    def __init__(self, settings: FilterSettings) -> None:
        self.section = settings.clamav
        self.target = self.section.target

    async def apply(self, message: FilterMessage) -> Decision:
        data = message.to_bytes()
        try:
            if len(data) > self.section.max_size:
                raise ScanError(f"message of {len(data)} bytes over max_size")
            answer = await instream(
                self.target, data, self.section.chunk_size, self.section.timeout
            )
        except ScanError as error:
            return self._failed(str(error))
        if answer == "OK":
            return Decision.proceed("clean")
        if answer.endswith(" FOUND"):
            signature = _UNSAFE.sub("?", answer.removesuffix(" FOUND"))[:100]
            if self.section.verdict == "discard":
                return Decision.discard(f"virus {signature}")
            return Decision.reject(f"virus {signature}", self.section.reply)
        return self._failed(f"clamd answered {_UNSAFE.sub('?', answer)[:100]!r}")

    def _failed(self, why: str) -> Decision:
        action = "deferred" if self.section.on_error == "defer" else "accepted"
        metrics.SCANNER_ERRORS.labels(self.name, action).inc()
        log.warning("clamav scan failed (%s); message %s", why, action)
        if self.section.on_error == "defer":
            return Decision.defer(f"scan failed: {why}")
        return Decision.proceed(f"not scanned: {why}")
