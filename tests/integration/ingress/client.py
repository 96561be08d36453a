"""A raw SMTP client for ingress tests: exact bytes out, whole replies back.

smtplib and aiosmtplib cannot send bare LF, pipelined batches, half lines or
PROXY headers; this client sends exactly what a test writes and parses replies
(multi-line aware) so the test can assert on codes and enhanced codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The last line as sent, e.g. ``554 5.7.1 Relay access denied``."""
        return f"{self.code} {self.lines[-1]}" if self.lines else str(self.code)

    @property
    def enhanced(self) -> str:
        return self.lines[-1].split(" ", 1)[0] if self.lines else ""


class RawClient:
    """One connection; ``source`` picks the loopback address we connect from."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        source: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        greeting: bool = True,
    ) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                local_addr=(source, 0),
                ssl=tls,
                server_hostname=None if tls is None else "",
            ),
            10,
        )
        client = cls(reader, writer)
        if greeting:
            banner = await client.reply()
            assert banner.code == 220, banner
        return client

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def reply(self, timeout: float = 10.0) -> Reply:
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise ConnectionError(f"connection closed after {lines!r}")
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return Reply(int(line[:3]), tuple(lines))

    async def command(self, line: str, timeout: float = 10.0) -> Reply:
        await self.send(line + "\r\n")
        return await self.reply(timeout)

    async def ehlo(self, name: str = "client.test") -> Reply:
        reply = await self.command(f"EHLO {name}")
        assert reply.code == 250, reply
        return reply

    async def starttls(self, context: ssl.SSLContext) -> None:
        reply = await self.command("STARTTLS")
        assert reply.code == 220, reply
        await self.writer.start_tls(context, server_hostname="")

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except ConnectionError:
            return True
        while data:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 5)
