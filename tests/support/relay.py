"""Run the whole relay (`postline run`) as a real process for end-to-end tests.

``RelayProcess`` writes a TOML config into a temporary directory, starts
``python -m postline.app --config FILE run`` with every listener on a free
loopback port, waits for ``/readyz`` and stops it with SIGTERM (asserting a
clean exit). Trails and logs live in the same directory for assertions.
``postline_argv`` and ``child_env`` start any other ``postline`` command the
same way (the config file alone decides, never the test's environment).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from tests.support.net import free_port, http_status

SERVICES = ("ingress", "filter", "delivery", "audit")
TRAILS = {
    "success": "OutboundAuditTrailSuccess.log",
    "failure": "OutboundAuditTrailFailure.log",
    "queue": "SmtpQueue.log",
    "conversation": "SMTPOutboundConversation.log",
}


def postline_argv(config: Path, *command: str) -> list[str]:
    """``python -m postline.app --config FILE COMMAND...`` with this interpreter."""
    return [sys.executable, "-m", "postline.app", "--config", str(config), *command]


def child_env() -> dict[str, str]:
    """This environment without ``POSTLINE_*``: a child's config file alone decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class RelayProcess:
    """One ``postline run`` process (or one service: ``command``) configured by ``sections``."""

    def __init__(self, workdir: Path, sections: dict[str, Any], command: str = "run") -> None:
        self.workdir = workdir
        self.command = command
        self.services = SERVICES if command == "run" else (command,)
        self.trail_dir = workdir / "trails"
        self.smtp_port = free_port()
        self.metrics_ports = {name: free_port() for name in SERVICES}
        self.api_port = free_port()
        defaults: dict[str, Any] = {
            "relay": {"hostname": "relay.test"},
            "ingress": {"listen": [f"127.0.0.1:{self.smtp_port}"]},
            "audit": {"trail_dir": str(self.trail_dir), "api_listen": f"127.0.0.1:{self.api_port}"},
            "log": {"level": "INFO"},
        }
        for name, port in self.metrics_ports.items():
            section = defaults.setdefault(name, {})
            section["metrics_listen"] = f"127.0.0.1:{port}"
            section["shutdown_grace"] = "5s"
        self.config = deep_merge(defaults, sections)
        self.config_path = workdir / "postline.toml"
        self.config_path.write_text(tomli_w.dumps(self.config))
        self.log_path = workdir / "relay.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_within: float = 30.0, wait_ready: bool = True) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                postline_argv(self.config_path, self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        if wait_ready:
            self.wait_ready(ready_within)

    def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"relay exited early ({self.process.returncode}):\n" + self.logs()[-4000:]
                )
            if self.ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"relay not ready within {within}s:\n" + self.logs()[-4000:])

    def ready(self) -> bool:
        """Every service of this process answers ``/readyz`` with 200."""
        return all(self.http_status(name, "/readyz") == 200 for name in self.services)

    def stop(self, within: float = 20.0) -> int:
        """SIGTERM, wait for the exit, return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("relay did not stop within the grace period") from None

    def http_status(self, service: str, path: str) -> int | None:
        return http_status(f"http://127.0.0.1:{self.metrics_ports[service]}{path}")

    def metrics(self, service: str = "ingress") -> str:
        url = f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric_value(
        self, name: str, labels: dict[str, str] | None = None, service: str = "ingress"
    ) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics(service)):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
                    total += sample.value
        return total

    def trail(self, which: str) -> list[dict[str, Any]]:
        """Parsed lines of one trail: ``success``, ``failure``, ``queue`` or ``conversation``."""
        path = self.trail_dir / TRAILS[which]
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RelayProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def eventually(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` every ``interval`` s until truthy; ``AssertionError`` naming
    ``what`` after ``timeout`` s (a costly question, such as a page of 500 messages from
    the API, asks with a longer ``interval``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
