"""End-to-end benchmark: Postfix's smtp-source -> postline run -> Postfix's smtp-sink.

Usage (from the repository root, RabbitMQ on 127.0.0.1:5672, Debian's
``postfix`` package installed for smtp-source and smtp-sink)::

    .venv/bin/python bench/e2e.py --messages 5000 --sessions 20 --size 4096

It starts a sink, writes a throw-away config (its own broker namespace, every
listener on loopback), starts all four services in one process (or, with
``--processes``, one process per service, as in production), submits with
smtp-source, waits until the success trail has every recipient, and prints:

* ingress accept rate (messages / smtp-source's wall time),
* end-to-end rate (messages / time from the first ingress accept to the
  last delivery, from the success trail),
* p50/p90/p99/max of queued-to-delivered latency (``queued_seconds`` of each
  success trail line: ingress accept to the remote 250).

Not a test: numbers depend on the machine. Record them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from common import drop_topology, free_port, http_status, percentiles_ms

from postline.app.settings import load_settings


def config(workdir: Path, smtp: int, sink: int, metrics: list[int]) -> dict[str, Any]:
    ingress, filter_, delivery, audit = (f"127.0.0.1:{port}" for port in metrics)
    return {
        "broker": {"namespace": f"bench-{uuid.uuid4().hex[:8]}"},
        "ingress": {
            "listen": [f"127.0.0.1:{smtp}"], "relay_networks": ["127.0.0.0/8"],
            "max_messages_per_ip": 0, "max_sessions_per_ip": 1000, "metrics_listen": ingress,
        },
        "filter": {"metrics_listen": filter_},
        "delivery": {"routes": {"bench.test": f"[127.0.0.1]:{sink}"}, "metrics_listen": delivery},
        "audit": {"trail_dir": str(workdir / "trails"), "metrics_listen": audit},
        "log": {"level": "WARNING"},
    }  # fmt: skip


def wait_ready(ports: list[int], process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"postline exited with {process.returncode}")
        if all(http_status(f"http://127.0.0.1:{p}/readyz") == 200 for p in ports):
            return
        time.sleep(0.2)
    sys.exit("postline did not become ready")


def delivered(trail: Path) -> list[dict[str, Any]]:
    if not trail.exists():
        return []
    return [json.loads(line) for line in trail.read_text().splitlines() if line]


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="postline-bench-"))
    smtp, sink = free_port(), free_port()
    metrics = [free_port() for _ in range(4)]
    settings = config(workdir, smtp, sink, metrics)
    (workdir / "postline.toml").write_text(tomli_w.dumps(settings))
    sink_proc = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", "-c", f"127.0.0.1:{sink}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    commands = ["ingress", "filter", "delivery", "audit"] if args.processes else ["run"]
    log = (workdir / "relay.log").open("wb")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "postline.app",
                "--config",
                str(workdir / "postline.toml"),
                command,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for command in commands
    ]
    try:
        for proc, ports in zip(
            procs, [[p] for p in metrics] if args.processes else [metrics], strict=True
        ):
            wait_ready(ports, proc, 60)
        started = time.monotonic()
        subprocess.run(
            ["smtp-source", "-s", str(args.sessions), "-m", str(args.messages), "-l",
             str(args.size), "-f", "bench@example.org", "-t", "rcpt@bench.test",
             f"127.0.0.1:{smtp}"], check=True,
        )  # fmt: skip
        submit_seconds = time.monotonic() - started
        trail = workdir / "trails" / "OutboundAuditTrailSuccess.log"
        deadline = time.monotonic() + args.timeout
        while len(lines := delivered(trail)) < args.messages:
            if time.monotonic() > deadline:
                sys.exit(f"only {len(lines)} of {args.messages} delivered in time")
            time.sleep(0.5)
        return summarise(args, lines, submit_seconds)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        sink_proc.terminate()
        asyncio.run(drop_topology(load_settings(workdir / "postline.toml")))
        shutil.rmtree(workdir, ignore_errors=True)


def summarise(
    args: argparse.Namespace, lines: list[dict[str, Any]], submit: float
) -> dict[str, Any]:
    latencies = [float(line["queued_seconds"]) for line in lines]
    latency = percentiles_ms(latencies)
    finished = max(datetime.fromisoformat(line["at"]) for line in lines)
    first_accept = min(
        datetime.fromisoformat(line["at"]).timestamp() - float(line["queued_seconds"])
        for line in lines
    )
    span = finished.timestamp() - first_accept
    return {
        "mode": "one process per service" if args.processes else "postline run (one process)",
        "messages": args.messages, "sessions": args.sessions, "size": args.size,
        "ingress_msgs_per_s": round(args.messages / submit, 1),
        "end_to_end_msgs_per_s": round(args.messages / span, 1),
        **{f"latency_{key}": value for key, value in latency.items()},
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for delivery")
    parser.add_argument(
        "--processes", action="store_true", help="one process per service instead of `postline run`"
    )
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install postfix")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
