"""Postline for bench/compare: the four services as separate processes, on loopback.

``PostlineStack(workdir, smtp_port, sink_port)`` writes a throw-away config:
its own broker namespace (real quorum queues on the RabbitMQ at
``POSTLINE_BENCH_BROKER_URL``, default 127.0.0.1:5672), ingress on
``127.0.0.1:<smtp_port>`` relaying for 127.0.0.0/8 with the per-IP limits
off (every client is 127.0.0.1), a delivery route ``bench.test ->
[127.0.0.1]:<sink_port>`` (no DNS), audit's trails and its SQLite index
under ``workdir/trails`` and its query API on a free loopback port, logs
(``log_level``, INFO by default as in Postline's defaults) to
``workdir/postline.log``. Everything else is the default, worker counts included. ``start`` runs
``python -m postline.app --config FILE <service>`` once per service (the
single-machine layout of docs/deploy.md) and waits for every ``/readyz``;
``stop`` sends SIGTERM and waits; ``close`` deletes the namespace. With
``code`` (a tree made by ``bench/snapshot``) the services run that copy of
Postline instead of the working tree: an A/B of two versions in one run.

``delays()`` is queued-to-delivered per recipient from the success trail
(``queued_seconds``: ingress's 250 to the remote 250).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import tomli_w
from common import BROKER, drop_topology, free_port, http_status

from postline.app.settings import Settings

SERVICES = ("ingress", "filter", "delivery", "audit")
SUCCESS = "OutboundAuditTrailSuccess.log"


class PostlineStack:
    """The four Postline services of one benchmark run (module docstring)."""

    def __init__(
        self,
        workdir: Path,
        smtp_port: int,
        sink_port: int,
        code: Path | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.workdir = workdir
        self.code = code
        self.log_level = log_level
        self.smtp_port = smtp_port
        self.metrics = {name: free_port() for name in SERVICES}
        self.sections = self._sections(sink_port)
        self.config = workdir / "postline.toml"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _sections(self, sink_port: int) -> dict[str, Any]:
        listen = {name: f"127.0.0.1:{port}" for name, port in self.metrics.items()}
        return {
            "broker": {"url": BROKER, "namespace": f"bench-cmp-{uuid.uuid4().hex[:8]}"},
            "ingress": {
                "listen": [f"127.0.0.1:{self.smtp_port}"],
                "relay_networks": ["127.0.0.0/8"],
                "max_messages_per_ip": 0,
                "max_sessions_per_ip": 10_000,
                "metrics_listen": listen["ingress"],
            },
            "filter": {"metrics_listen": listen["filter"]},
            "delivery": {
                "routes": {"bench.test": f"[127.0.0.1]:{sink_port}"},
                "metrics_listen": listen["delivery"],
            },
            "audit": {
                "trail_dir": str(self.workdir / "trails"),
                "api_listen": f"127.0.0.1:{free_port()}",
                "metrics_listen": listen["audit"],
            },
            "log": {"level": self.log_level},
        }

    def start(self, within: float = 60.0) -> dict[str, int]:
        """Start the services; their pids once every one is ready."""
        self.config.write_text(tomli_w.dumps(self.sections))
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
        if self.code is not None:  # another copy of the code (bench/snapshot) comes first
            env["PYTHONPATH"] = str(self.code)
        log = (self.workdir / "postline.log").open("ab")
        for name in SERVICES:
            command = [sys.executable, "-m", "postline.app", "--config", str(self.config), name]
            self.processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + within
        for name, port in self.metrics.items():
            while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
                if (code := self.processes[name].poll()) is not None:
                    raise RuntimeError(f"postline {name} exited with {code}: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postline {name} did not become ready")
                time.sleep(0.1)
        return {name: process.pid for name, process in self.processes.items()}

    def log_tail(self) -> str:
        path = self.workdir / "postline.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def trail_lines(self) -> list[dict[str, Any]]:
        trail = self.workdir / "trails" / SUCCESS
        if not trail.exists():
            return []
        return [json.loads(line) for line in trail.read_bytes().splitlines() if line]

    def delays(self, recipients: int, stall: float = 10.0) -> list[float]:
        """``queued_seconds`` of the success trail once it has ``recipients`` lines (audit
        may lag the sink), or what it has when it did not grow for ``stall`` seconds."""
        seen, changed = -1, time.monotonic()
        while len(lines := self.trail_lines()) < recipients:
            if len(lines) != seen:
                seen, changed = len(lines), time.monotonic()
            elif time.monotonic() - changed > stall:
                break
            time.sleep(0.2)
        return [float(line["queued_seconds"]) for line in lines]

    def stop(self, within: float = 60.0) -> None:
        """SIGTERM every service and wait for it (SIGKILL after ``within``)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        """Delete the run's namespace (queues and exchanges) from the broker."""
        asyncio.run(drop_topology(Settings.model_validate(self.sections)))
