"""A slow SMTP sink for bench/scale: waits ``delay`` seconds before its 250 to each DATA.

``python bench/slow_sink.py PORT DELAY`` listens on 127.0.0.1:PORT (aiosmtpd,
any envelope accepted, nothing stored) and after each message prints
``mesg=<n>\\r`` to stdout, the running counter smtp-sink prints, so
``flat.SlowSink`` counts it like ``load.Sink`` counts smtp-sink. Every
session waits on its own, so N transactions in flight take ``delay``, not
N times it: the remote's latency, not its capacity, is what a delivery
process waits for. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class _Slow:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        self.count += 1
        sys.stdout.write(f"mesg={self.count}\r")
        sys.stdout.flush()
        return "250 2.0.0 OK"


async def serve(port: int, delay: float) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM."""
    handler = _Slow(delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="slow-sink.test", data_size_limit=64 * 2**20),
        "127.0.0.1",
        port,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))
