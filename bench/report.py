"""Tables, medians and the RESULT line of bench/compare.

``RunResult`` is one run of one system. ``print_report(results)`` prints the
per-run table, the per-process table (CPU seconds per 1,000 messages and peak
RSS per process), the per-process medians, the medians per system, the
ratios Postline/Postfix of the medians, and as its last line
``RESULT end_to_end_ratio=<x> accept_ratio=<y> lost=<n>`` (``lost`` summed
over every run of both systems).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from procstat import Usage

POSTFIX, POSTLINE = "postfix", "postline"


@dataclass
class RunResult:
    """What one run of one system measured."""

    system: str
    run: int
    messages: int
    accept_rate: float
    end_to_end_rate: float
    accept_ms: tuple[float, float]
    queued_ms: tuple[float, float]
    machine_cpu_per_1000: float
    lost: int
    duplicates: int
    probes: int
    processes: dict[str, Usage] = field(default_factory=dict)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def p50_p99_ms(seconds: list[float]) -> tuple[float, float]:
    return percentile(seconds, 0.50) * 1000, percentile(seconds, 0.99) * 1000


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run_table(results: list[RunResult]) -> list[str]:
    head = ["system", "run", "accept msgs/s", "end-to-end msgs/s", "accept p50/p99 ms"]
    head += ["queued-to-delivered p50/p99 ms", "machine CPU s/1000 msgs", "lost", "duplicates"]
    lines = [_row(head), _row(["---"] * 2 + ["---:"] * (len(head) - 2))]
    for r in results:
        lines.append(
            _row(
                [
                    r.system,
                    str(r.run),
                    f"{r.accept_rate:.0f}",
                    f"{r.end_to_end_rate:.0f}",
                    f"{r.accept_ms[0]:.1f} / {r.accept_ms[1]:.1f}",
                    f"{r.queued_ms[0]:.0f} / {r.queued_ms[1]:.0f}",
                    f"{r.machine_cpu_per_1000:.2f}",
                    str(r.lost),
                    str(r.duplicates),
                ]
            )
        )
    return lines


def process_table(results: list[RunResult]) -> list[str]:
    lines = [_row(["system", "run", "process", "count", "CPU s/1000 msgs", "peak RSS MiB"])]
    lines.append(_row(["---"] * 3 + ["---:"] * 3))
    for r in results:
        for label, usage in sorted(r.processes.items(), key=lambda kv: -kv[1].cpu_seconds):
            per_1000 = usage.cpu_seconds / r.messages * 1000
            lines.append(
                _row(
                    [
                        r.system,
                        str(r.run),
                        label,
                        str(usage.processes),
                        f"{per_1000:.2f}",
                        f"{usage.peak_rss_bytes / 2**20:.0f}",
                    ]
                )
            )
    return lines


def process_medians(results: list[RunResult]) -> list[str]:
    """Median CPU seconds per 1,000 messages of each process label, one column per system."""
    systems = list(dict.fromkeys(r.system for r in results))
    labels = sorted({label for r in results for label in r.processes})
    lines = [_row(["process", *systems]), _row(["---"] + ["---:"] * len(systems))]
    for label in labels:
        cells = []
        for system in systems:
            values = [
                r.processes[label].cpu_seconds / r.messages * 1000
                for r in results
                if r.system == system and label in r.processes
            ]
            cells.append(f"{statistics.median(values):.2f}" if values else "")
        lines.append(_row([label, *cells]))
    return lines


def medians(results: list[RunResult], system: str) -> dict[str, float]:
    mine = [r for r in results if r.system == system]
    if not mine:
        return {}
    return {
        "accept": statistics.median(r.accept_rate for r in mine),
        "end_to_end": statistics.median(r.end_to_end_rate for r in mine),
        "accept_p99": statistics.median(r.accept_ms[1] for r in mine),
        "cpu": statistics.median(r.machine_cpu_per_1000 for r in mine),
    }


def print_report(results: list[RunResult]) -> str:
    """Print everything; return the RESULT line (also printed last)."""
    print("\nPer run:")
    print("\n".join(run_table(results)))
    print("\nPer process (CPU seconds per 1,000 messages; peak RSS of one process):")
    print("\n".join(process_table(results)))
    print("\nMedian CPU seconds per 1,000 messages per process:")
    print("\n".join(process_medians(results)))
    fix, line = medians(results, POSTFIX), medians(results, POSTLINE)
    print("\nMedians:")
    for system in dict.fromkeys(r.system for r in results):
        if values := medians(results, system):
            print(
                f"  {system:9} accept {values['accept']:.0f} msgs/s, end-to-end "
                f"{values['end_to_end']:.0f} msgs/s, accept p99 {values['accept_p99']:.1f} ms, "
                f"machine CPU {values['cpu']:.2f} s/1000 msgs"
            )
    ratio_e2e = line["end_to_end"] / fix["end_to_end"] if fix and line else 0.0
    ratio_accept = line["accept"] / fix["accept"] if fix and line else 0.0
    if fix and line:
        print(
            f"  ratio Postline/Postfix: end-to-end {ratio_e2e:.2f}, accept {ratio_accept:.2f}, "
            f"CPU per message {line['cpu'] / fix['cpu']:.2f}"
        )
    lost = sum(r.lost for r in results)
    result = f"RESULT end_to_end_ratio={ratio_e2e:.2f} accept_ratio={ratio_accept:.2f} lost={lost}"
    print(result)
    return result
