"""Ingress alone: Postfix's smtp-source -> ``postline ingress`` -> the live RabbitMQ.

Usage (repository root, RabbitMQ on 127.0.0.1:5672, Debian's ``postfix``
package for smtp-source)::

    .venv/bin/python bench/ingress.py --messages 20000 --sessions 20 --size 4096

It starts ``postline --config FILE ingress`` with a throw-away namespace
(relay from loopback, rate limits off), waits for ``/readyz``, then runs
smtp-source twice: once reusing connections (``-d``: many messages per
session) and once with a new connection per message. During each run a probe
client submits one message at a time in its own session and times the end of
DATA to the ``250`` (the accept latency a client sees under that load). It
prints msgs/s, the probe's p50/p99, and the server's own mean end-of-DATA to
broker-confirm time (``postline_ingress_publish_seconds``). The namespace is
deleted afterwards. Not a test: record the numbers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import tomli_w
from common import BROKER, drop_topology, free_port, http_status, percentiles_ms
from prometheus_client.parser import text_string_to_metric_families

from postline.app.settings import Settings


def server_publish_seconds(metrics_port: int) -> tuple[float, float]:
    """(count, sum) of postline_ingress_publish_seconds."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "postline_ingress_publish_seconds_count":
                values["count"] = sample.value
            elif sample.name == "postline_ingress_publish_seconds_sum":
                values["sum"] = sample.value
    return values["count"], values["sum"]


async def probe(port: int, stop: asyncio.Event, size: int) -> list[float]:
    """One client, one message at a time; seconds from the final dot to the 250."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"Subject: probe\r\n\r\n" + (b"x" * 76 + b"\r\n") * max(1, size // 78) + b".\r\n"

    async def command(line: bytes) -> bytes:
        writer.write(line)
        await writer.drain()
        while True:
            reply = await reader.readline()
            if reply[3:4] != b"-":
                return reply

    await reader.readline()
    await command(b"EHLO probe.test\r\n")
    latencies: list[float] = []
    while not stop.is_set():
        await command(b"MAIL FROM:<probe@example.org>\r\n")
        await command(b"RCPT TO:<probe@example.net>\r\n")
        await command(b"DATA\r\n")
        started = time.perf_counter()
        reply = await command(body)
        if reply.startswith(b"250"):
            latencies.append(time.perf_counter() - started)
    writer.close()
    return latencies


async def run_source(args: argparse.Namespace, port: int, reuse: bool) -> dict[str, Any]:
    command = ["smtp-source", "-s", str(args.sessions), "-m", str(args.messages)]
    command += ["-l", str(args.size), "-f", "bench@example.org", "-t", "bench@example.net"]
    if reuse:
        command.append("-d")
    command.append(f"127.0.0.1:{port}")
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(port, stop, args.size))
    started = time.perf_counter()
    source = await asyncio.create_subprocess_exec(*command)
    code = await source.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    latencies = await probing
    if code != 0:
        raise SystemExit(f"smtp-source failed with exit code {code}")
    return {
        "mode": "reused connections (-d)" if reuse else "one connection per message",
        "rate": args.messages / elapsed,
        "elapsed": elapsed,
        **percentiles_ms(latencies),
        "probes": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    namespace = f"bench-ingress-{uuid.uuid4().hex[:8]}"
    port, metrics_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="postline-bench-ingress-"))
    sections: dict[str, Any] = {
        "broker": {"url": BROKER, "namespace": namespace},
        "ingress": {
            "listen": [f"127.0.0.1:{port}"],
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "relay_networks": ["127.0.0.0/8"],
            "max_messages_per_ip": 0,
            "max_sessions_per_ip": 1000,
        },
        "log": {"level": "WARNING"},
    }
    config = workdir / "postline.toml"
    config.write_text(tomli_w.dumps(sections))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "postline.app", "--config", str(config), "ingress", env=env
    )
    try:
        deadline = time.monotonic() + 30
        while http_status(f"http://127.0.0.1:{metrics_port}/readyz") != 200:
            if time.monotonic() > deadline:
                raise SystemExit("ingress did not become ready")
            await asyncio.sleep(0.1)
        results = []
        for reuse in (True, False):
            before = server_publish_seconds(metrics_port)
            result = await run_source(args, port, reuse)
            after = server_publish_seconds(metrics_port)
            count, total = after[0] - before[0], after[1] - before[1]
            result["server_mean_ms"] = total / count * 1000 if count else 0.0
            results.append(result)
    finally:
        server.send_signal(signal.SIGTERM)
        await server.wait()
        await drop_topology(Settings.model_validate(sections))
    python = platform.python_version()
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, Python {python}")
    print(f"{args.messages} messages of {args.size} bytes, {args.sessions} smtp-source sessions")
    for r in results:
        print(
            f"{r['mode']:28} {r['rate']:8.0f} msgs/s  probe p50 {r['p50_ms']:6.1f} ms"
            f"  p99 {r['p99_ms']:6.1f} ms ({r['probes']} probes)"
            f"  server publish mean {r['server_mean_ms']:5.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
