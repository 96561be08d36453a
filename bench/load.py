"""The load of bench/compare: smtp-source, a latency probe, and smtp-sink counting arrivals.

``Sink`` runs Postfix's ``smtp-sink -c`` on a loopback port and reads its
running counter (``mesg=N``, one per transaction received) from its stdout, so
``wait_for(n)`` knows the moment the n-th message arrived.

``submit(load, port)`` runs smtp-source with the ``Load`` parameters and, at
the same time, a probe client that submits one message at a time (its own
session, EHLO once, then MAIL/RCPT/DATA in a loop) and times the final dot to
the ``250``: the accept latency a client sees under that load. It returns
smtp-source's wall time, the probe's latencies and how many probe messages
were accepted (they go to the sink too).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass

SINK_DOMAIN = "bench.test"
COUNTER = re.compile(rb"mesg=(\d+)\r")


@dataclass(frozen=True)
class Load:
    """What smtp-source sends (the benchmark's parameters)."""

    messages: int
    sessions: int
    size: int
    recipients: int
    reuse: bool

    def command(self, port: int) -> list[str]:
        """The smtp-source command line for a server on 127.0.0.1:``port``."""
        command = ["smtp-source", "-s", str(self.sessions), "-m", str(self.messages)]
        command += ["-l", str(self.size), "-r", str(self.recipients)]
        command += ["-f", "bench@example.org", "-t", f"rcpt@{SINK_DOMAIN}"]
        if self.reuse:
            command.append("-d")
        return [*command, f"127.0.0.1:{port}"]


class Sink:
    """``smtp-sink`` on 127.0.0.1:``port`` and its message counter."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self.last_arrival = time.monotonic()
        self._changed = threading.Condition()
        self._process = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", "-c", f"127.0.0.1:{port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self._process.pid
        self._reader = threading.Thread(target=self._read, name="sink-counter", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            numbers = COUNTER.findall(chunk)
            if numbers and (count := int(numbers[-1])) > self.count:
                with self._changed:
                    self.count, self.last_arrival = count, time.monotonic()
                    self._changed.notify_all()

    def wait_for(self, total: int, stall: float) -> float | None:
        """``time.monotonic()`` when ``total`` messages had arrived; None if none came for
        ``stall`` seconds before that."""
        with self._changed:
            last, changed_at = self.count, time.monotonic()
            while self.count < total:
                left = changed_at + stall - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
                if self.count != last:
                    last, changed_at = self.count, time.monotonic()
            return time.monotonic()

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._reader.join(5)


@dataclass
class Submitted:
    """What one smtp-source run and its probe did."""

    started: float
    seconds: float
    probe_latencies: list[float]
    probes_accepted: int


async def submit(load: Load, port: int, on_start: object = None) -> Submitted:
    """Run smtp-source and the probe against 127.0.0.1:``port`` (module docstring)."""
    stop = asyncio.Event()
    probing = asyncio.create_task(_probe(port, stop, load.size))
    started = time.monotonic()
    source = await asyncio.create_subprocess_exec(*load.command(port))
    if callable(on_start):
        on_start(source.pid)
    code = await source.wait()
    seconds = time.monotonic() - started
    stop.set()
    latencies = await probing
    if code != 0:
        raise RuntimeError(f"smtp-source failed with exit code {code}")
    return Submitted(started, seconds, latencies, len(latencies))


async def _probe(port: int, stop: asyncio.Event, size: int) -> list[float]:
    """One message at a time; seconds from the final dot to each 250."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = max(1, size // 78)
    body = b"Subject: probe\r\n\r\n" + (b"x" * 76 + b"\r\n") * lines + b".\r\n"

    async def command(line: bytes) -> bytes:
        writer.write(line)
        await writer.drain()
        while True:
            reply = await reader.readline()
            if not reply:
                raise ConnectionError("the server closed the probe's session")
            if reply[3:4] != b"-":
                return reply

    await command(b"")  # the greeting
    await command(b"EHLO probe.test\r\n")
    latencies: list[float] = []
    while not stop.is_set():
        await command(b"MAIL FROM:<probe@example.org>\r\n")
        await command(f"RCPT TO:<probe@{SINK_DOMAIN}>\r\n".encode())
        await command(b"DATA\r\n")
        started = time.perf_counter()
        reply = await command(body)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"probe message refused: {reply!r}")
        latencies.append(time.perf_counter() - started)
    await command(b"QUIT\r\n")
    writer.close()
    return latencies
