"""A small SMTP client for bench/scale, bench/large and bench/soak.

``SmtpSession`` is one session to 127.0.0.1:``port``: ``open()`` returns the
greeting's code (``421`` when the server refuses the session), ``send(body,
recipient)`` runs MAIL/RCPT/DATA and returns the first code that was not a
success (or the final dot's ``250``); the body is written in 1 MiB slices
with ``drain`` in between, so a 25 MiB message is never copied whole.
``body(size)`` is a message of about ``size`` bytes, dot-terminated.

``paced(port, ...)`` submits over ``sessions`` reused sessions, message ``k``
not before ``start + k / rate`` (``rate`` 0: as fast as they go), either
``count`` messages or until ``duration`` seconds passed; a session that
falls behind sends at once, so the achieved rate says whether the target was
kept. It returns the codes of every final reply.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

SLICE = 2**20


def body(size: int, subject: str = "bench") -> bytes:
    """A message of about ``size`` bytes (76-character lines), ending with CRLF.CRLF."""
    lines = max(1, size // 78)
    return f"Subject: {subject}\r\n\r\n".encode() + (b"x" * 76 + b"\r\n") * lines + b".\r\n"


class SmtpSession:
    """One client session (module docstring)."""

    def __init__(self, port: int, timeout: float = 300.0) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _reply(self) -> int:
        assert self.reader is not None
        while True:
            line = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not line:
                return 0  # the server closed the connection
            if line[3:4] != b"-":
                return int(line[:3])

    async def _command(self, line: bytes) -> int:
        assert self.writer is not None
        self.writer.write(line)
        await self.writer.drain()
        return await self._reply()

    async def open(self) -> int:
        """Connect, read the greeting, EHLO; the greeting's code (or EHLO's if not 2xx)."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        greeting = await self._reply()
        if greeting != 220:
            return greeting
        code = await self._command(b"EHLO bench.client\r\n")
        return greeting if code == 250 else code

    async def send(self, message: bytes, recipient: str) -> int:
        """One transaction; the first failing code, or the final reply's."""
        for line in (b"MAIL FROM:<bench@example.org>\r\n", f"RCPT TO:<{recipient}>\r\n".encode()):
            if (code := await self._command(line)) != 250:
                return code
        if (code := await self._command(b"DATA\r\n")) != 354:
            return code
        assert self.writer is not None
        view = memoryview(message)
        for offset in range(0, len(view), SLICE):
            self.writer.write(view[offset : offset + SLICE])
            await self.writer.drain()
        return await self._reply()

    async def reset(self) -> None:
        """RSET after a refused transaction."""
        await self._command(b"RSET\r\n")

    async def close(self) -> None:
        if self.writer is None:
            return
        try:
            if not self.writer.is_closing():
                await asyncio.wait_for(self._command(b"QUIT\r\n"), 5)
        except (TimeoutError, OSError, ValueError):
            pass
        self.writer.close()


@dataclass
class Submitted:
    """What ``paced`` did: final reply codes counted, wall time."""

    codes: Counter[int] = field(default_factory=Counter)
    started: float = 0.0
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.codes[250]


async def paced(
    port: int,
    recipient: str,
    rate: float = 0.0,
    count: int | None = None,
    duration: float | None = None,
    sessions: int = 10,
    size: int = 4096,
) -> Submitted:
    """Submit at ``rate`` messages/s (module docstring)."""
    message = body(size)
    result = Submitted(started=time.monotonic())
    issued = 0

    def next_slot() -> float | None:
        nonlocal issued
        at = result.started + (issued / rate if rate > 0 else 0.0)
        if count is not None and issued >= count:
            return None
        if duration is not None and max(at, time.monotonic()) - result.started >= duration:
            return None
        issued += 1
        return at

    async def one_session() -> None:
        session = SmtpSession(port)
        try:
            if (greeting := await session.open()) != 220:
                result.codes[greeting] += 1
                return
            while (at := next_slot()) is not None:
                if (wait := at - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                code = await session.send(message, recipient)
                result.codes[code] += 1
                if code in (0, 421):  # the server ended the session
                    return
                if code != 250:
                    await session.reset()
        finally:
            await session.close()

    await asyncio.gather(*(one_session() for _ in range(sessions)))
    result.seconds = time.monotonic() - result.started
    return result
