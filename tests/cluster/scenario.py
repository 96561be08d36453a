"""Pieces of the cluster scenario: the four services as processes, steady load, probes.

``exported_names`` is every series name a Prometheus text scrape offers (for
the check that deploy/'s rules and dashboard name only real metrics).

``Services`` runs ingress, filter, delivery and audit as four ``postline``
processes (``RelayProcess(command=...)``), all configured with every node's
URL. ``Load`` keeps a few SMTP clients submitting through the ledger until
stopped. ``probe`` is one SMTP transaction that returns the reply to DATA.
``Timeline`` records what the scenario did and when, for the report.
"""

from __future__ import annotations

import itertools
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ledger import TEST_ID, Ledger
from tests.support.relay import SERVICES, RelayProcess


class Services:
    """The four services, one process each, sharing ``sections``."""

    def __init__(self, workdir: Path, sections: dict[str, Any]) -> None:
        for name in SERVICES:
            (workdir / name).mkdir(parents=True, exist_ok=True)
        self.processes = {
            name: RelayProcess(workdir / name, sections, command=name) for name in SERVICES
        }
        self.pids: dict[str, int] = {}

    @property
    def ingress(self) -> RelayProcess:
        return self.processes["ingress"]

    @property
    def audit(self) -> RelayProcess:
        return self.processes["audit"]

    def start(self) -> None:
        for process in self.processes.values():
            process.start(wait_ready=False)
        for name, process in self.processes.items():
            process.wait_ready(60)
            assert process.process is not None
            self.pids[name] = process.process.pid

    def ready(self) -> bool:
        return all(process.ready() for process in self.processes.values())

    def exited(self) -> dict[str, int]:
        """Services whose process ended (name -> exit code): none may, during the scenario."""
        return {
            name: code
            for name, process in self.processes.items()
            if process.process is not None and (code := process.process.poll()) is not None
        }

    def same_processes(self) -> bool:
        return all(
            p.process is not None and p.process.pid == self.pids[n]
            for n, p in self.processes.items()
        )

    def stop(self) -> dict[str, int]:
        return {name: process.stop(30) for name, process in self.processes.items()}

    def kill(self) -> None:
        """After a failure: end whatever still runs, by its own pid."""
        for process in self.processes.values():
            if process.process is not None and process.process.poll() is None:
                process.process.kill()
                process.process.wait(30)

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {n}\n{p.logs()[-chars:]}" for n, p in self.processes.items())


class Load:
    """``clients`` threads submitting through ``ledger`` until ``stop()``."""

    def __init__(self, ledger: Ledger, port: int, clients: int) -> None:
        self.ledger = ledger
        self.port = port
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self) -> None:
        while not self._stop.is_set():
            before = len(self.ledger.accepted)
            n = next(self._counter)
            self.ledger.submit(self.port, f"user{n % 7}-{n}@ok.test")
            if len(self.ledger.accepted) == before:
                self._stop.wait(0.1)  # refused or unreachable: don't spin


def probe(port: int, rcpt: str) -> tuple[int, str]:
    """One transaction; (code, text) of the reply that ended it (250 when queued)."""
    body = f"From: probe@example.org\r\nTo: {rcpt}\r\nSubject: probe\r\n\r\nprobe\r\n"
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("probe@example.org", [rcpt], body.encode())
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error
        return error.smtp_code, text.decode(errors="replace") if isinstance(text, bytes) else text
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()))
        return code, text.decode(errors="replace")
    return 250, ""


@dataclass
class Timeline:
    """What the scenario did, with seconds since its start."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 1), what))
        print(f"[{self.events[-1][0]:7.1f}s] {what}", flush=True)

    def lines(self) -> Iterator[str]:
        for at, what in self.events:
            yield f"{at:7.1f}s  {what}"


async def queue_report(url: str, queues: list[str]) -> tuple[dict[str, int], set[str]]:
    """(ready messages per queue, test ids of the messages in the last queue: parked).

    Parked messages are taken off the queue (acknowledged): the scenario is over.
    """
    import aio_pika

    depths: dict[str, int] = {}
    parked: set[str] = set()
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = int(queue.declaration_result.message_count or 0)
        last = await channel.declare_queue(queues[-1], passive=True)
        while (message := await last.get(fail=False, timeout=5)) is not None:
            parked |= {m.group(1).decode() for m in TEST_ID.finditer(message.body)}
            await message.ack()
    return depths, parked


def exported_names(scrape: str) -> set[str]:
    """Metric family and sample names of one Prometheus text-format scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names
