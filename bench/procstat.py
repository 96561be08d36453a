"""CPU and memory accounting from /proc for bench/compare.

``machine_cpu_seconds()`` is the busy time of the whole machine so far (every
core; user, nice, system, irq, softirq, steal from ``/proc/stat``).

``Sampler`` follows labelled process trees: ``watch(pid, label)`` labels a
process and every descendant it forks later (``by_name=True``: each descendant
is labelled ``label/<its command name>``, how Postfix's daemons are told
apart). A thread reads ``/proc/<pid>/stat`` of every process every
``interval`` seconds; ``stop()`` takes a last sample and returns, per label,
the CPU seconds used since ``start()`` (a process seen at the start counts
from then, one forked later from zero), the largest resident set any one of its
processes had in a sample, and how many processes it had. CPU a process uses
after the last sample before it exits is missed, so the services under test
must not exit during a run (the Postfix instance raises ``max_use``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of all cores since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Usage:
    """One label's share of a run."""

    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    processes: int = 0


@dataclass
class _Seen:
    label: str
    base: float
    last: float = 0.0
    rss: int = 0


def _read(pid: int) -> tuple[int, str, float, int] | None:
    """(ppid, comm, cpu seconds, rss bytes) of ``pid``; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    cpu = (int(rest[11]) + int(rest[12])) / TICK
    return int(rest[1]), comm, cpu, int(rest[21]) * PAGE


@dataclass
class Sampler:
    """Per-label CPU and peak RSS of process trees (module docstring)."""

    interval: float = 0.2
    _roots: dict[int, tuple[str, bool]] = field(default_factory=dict)
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _started: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, pid: int, label: str, by_name: bool = False) -> None:
        with self._lock:
            self._roots[pid] = (label, by_name)

    def start(self) -> None:
        self.sample()
        self._started = True
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read every process once and update the labelled ones."""
        table: dict[int, tuple[int, str, float, int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (row := _read(int(entry.name))) is not None:
                table[int(entry.name)] = row
        with self._lock:
            for pid, (_, _, cpu, rss) in table.items():
                label = self._label(pid, table)
                if label is None:
                    continue
                seen = self._seen.get(pid)
                if seen is None or seen.label != label:
                    seen = self._seen[pid] = _Seen(label, cpu if not self._started else 0.0)
                seen.last, seen.rss = cpu, max(seen.rss, rss)

    def _label(self, pid: int, table: dict[int, tuple[int, str, float, int]]) -> str | None:
        current = pid
        for _ in range(64):
            if current in self._roots:
                label, by_name = self._roots[current]
                return f"{label}/{table[pid][1]}" if by_name else label
            row = table.get(current)
            if row is None or row[0] <= 1:
                return None
            current = row[0]
        return None

    def stop(self) -> dict[str, Usage]:
        """Stop sampling; the usage per label since ``start``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        usage: dict[str, Usage] = {}
        for seen in self._seen.values():
            one = usage.setdefault(seen.label, Usage())
            one.cpu_seconds += max(seen.last - seen.base, 0.0)
            one.peak_rss_bytes = max(one.peak_rss_bytes, seen.rss)
            one.processes += 1
        return usage


def rss_bytes(pid: int) -> int | None:
    """The resident set of ``pid`` now; None once it is gone."""
    row = _read(pid)
    return row[3] if row is not None else None
