"""What bench/scale, bench/large and bench/soak share: a stack of N delivery processes,
a slow sink, the namespace's queue depths and one run's clean-up.

``ScaledStack`` is ``postline_stack.PostlineStack`` (same throw-away config,
namespace and temp dir) with labelled processes: ``ingress``, ``filter``,
``audit`` and ``delivery1`` .. ``deliveryN``, each ``postline.app <service>``
with its own config file (only its ``metrics_listen`` differs), started by
``start(labels)`` in any order and waited for on ``/readyz``. ``overrides``
are merged into the sections (e.g. ``{"ingress": {"max_message_size": ...}}``;
a value of ``None`` removes the key, so that Postline's default applies).

``SlowSink`` runs ``bench/slow_sink.py`` (250 to DATA after ``delay``
seconds) and counts arrivals like ``load.Sink`` counts smtp-sink's.

``queue_depths(settings)`` (``queue_depths_async`` in a running loop) is
the ready-message count of every non-stream queue of the namespace. ``Run``
is a context manager owning the temp dir, the sink and the stack: on
leaving, even by an exception, Ctrl-C or SIGTERM, the
processes are stopped, the namespace deleted and the directory removed.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aio_pika
import tomli_w
from common import free_port, http_status
from load import Sink
from postline_stack import PostlineStack

from postline.app.settings import Settings, topology_for

BENCH = Path(__file__).resolve().parent


class ScaledStack(PostlineStack):
    """Postline with ``deliveries`` delivery processes (module docstring)."""

    def __init__(
        self,
        workdir: Path,
        smtp_port: int,
        sink_port: int,
        deliveries: int = 1,
        overrides: dict[str, dict[str, Any]] | None = None,
        log_level: str = "INFO",
    ) -> None:
        super().__init__(workdir, smtp_port, sink_port, log_level=log_level)
        for section, values in (overrides or {}).items():
            target = self.sections.setdefault(section, {})
            for key, value in values.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        self.metrics = {name: port for name, port in self.metrics.items() if name != "delivery"}
        self.metrics |= {f"delivery{i}": free_port() for i in range(1, deliveries + 1)}
        self.delivery_labels = [f"delivery{i}" for i in range(1, deliveries + 1)]

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(self.sections)

    def _config_for(self, label: str) -> Path:
        service = label.rstrip("0123456789")
        sections = copy.deepcopy(self.sections)
        sections[service]["metrics_listen"] = f"127.0.0.1:{self.metrics[label]}"
        path = self.workdir / f"{label}.toml"
        path.write_text(tomli_w.dumps(sections))
        return path

    def start(self, within: float = 60.0, labels: list[str] | None = None) -> dict[str, int]:
        """Start ``labels`` (default: every process); their pids once each is ready."""
        labels = labels if labels is not None else list(self.metrics)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
        log = (self.workdir / "postline.log").open("ab")
        for label in labels:
            service = label.rstrip("0123456789")
            command = [sys.executable, "-m", "postline.app", "--config"]
            command += [str(self._config_for(label)), service]
            self.processes[label] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + within
        for label in labels:
            while http_status(f"http://127.0.0.1:{self.metrics[label]}/readyz") != 200:
                if (code := self.processes[label].poll()) is not None:
                    raise RuntimeError(f"postline {label} exited with {code}: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postline {label} did not become ready")
                time.sleep(0.1)
        return {label: self.processes[label].pid for label in labels}

    def crashed(self) -> dict[str, int]:
        """The processes that exited, with their exit codes."""
        return {
            label: code for label, p in self.processes.items() if (code := p.poll()) is not None
        }


class SlowSink(Sink):
    """``bench/slow_sink.py`` on 127.0.0.1:``port``, counted like smtp-sink."""

    def __init__(self, port: int, delay: float) -> None:
        self.port = port
        self.count = 0
        self.last_arrival = time.monotonic()
        self._changed = threading.Condition()
        self._process = subprocess.Popen(
            [sys.executable, str(BENCH / "slow_sink.py"), str(port), str(delay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self._process.pid
        self._reader = threading.Thread(target=self._read, name="sink-counter", daemon=True)
        self._reader.start()


async def queue_depths_async(settings: Settings) -> dict[str, int]:
    connection = await aio_pika.connect(settings.broker.url, timeout=10)
    depths = {}
    async with connection:
        channel = await connection.channel()
        for queue in topology_for(settings).queues:
            if queue.arguments.get("x-queue-type") == "stream":
                continue
            declared = await channel.declare_queue(queue.name, passive=True)
            depths[queue.name] = declared.declaration_result.message_count or 0
    return depths


def queue_depths(settings: Settings) -> dict[str, int]:
    """Ready messages per queue of the namespace (streams left out)."""
    return asyncio.run(queue_depths_async(settings))


def wait_drained(settings: Settings, within: float) -> dict[str, int]:
    """Poll ``queue_depths`` until every queue is empty or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    while True:
        depths = queue_depths(settings)
        if not any(depths.values()) or time.monotonic() > deadline:
            return depths
        time.sleep(1.0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Run:
    """Temp dir, sink and stack of one benchmark run, all cleaned up on leaving."""

    def __init__(self, prefix: str, keep: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"postline-{prefix}-"))
        self.smtp_port, self.sink_port = free_port(), free_port()
        self.keep = keep
        self.sink: Sink | None = None
        self.stack: ScaledStack | None = None

    def __enter__(self) -> Run:
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` / `timeout` clean up too
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.stack is not None:
            if kind is not None:
                print(f"postline log tail:\n{self.stack.log_tail()}", file=sys.stderr)
            self.stack.stop()
            try:
                self.stack.close()
            except Exception as problem:  # report it; the rest must still be cleaned up
                print(f"could not delete the namespace: {problem!r}", file=sys.stderr)
        if self.sink is not None:
            self.sink.close()
        if self.keep:
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
