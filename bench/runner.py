"""One run of one system, and the alternating rounds, for bench/compare.

``run_one(options, system, number)``: fresh temp dir, free loopback ports, a
new smtp-sink, the system under test started (``postfix.PostfixRelay`` or
``postline_stack.PostlineStack``); the ``procstat.Sampler`` follows the
system's processes (Postline's RabbitMQ node too), smtp-source, the sink and
this process (the probe); the load runs (``load.submit``); the run ends when
the sink has every message or nothing arrived for ``stall`` seconds (what is
missing then is ``lost``). Postline's accounting window also waits for audit
to finish the success trail (its work belongs to the run); the end-to-end
time stops at the sink's last arrival. Then the system is stopped and its
directory (and broker namespace) removed.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import BROKER, free_port
from load import Load, Sink, submit
from postfix import PostfixRelay, missing_tools
from postline_stack import PostlineStack
from procstat import Sampler, machine_cpu_seconds
from report import POSTFIX, POSTLINE, RunResult, p50_p99_ms, print_report


@dataclass(frozen=True)
class Options:
    """The command line of bench/compare."""

    messages: int
    sessions: int
    size: int
    recipients: int
    reuse: bool
    runs: int
    systems: tuple[str, ...]
    stall: float
    keep: bool = False
    profile: Path | None = None
    log_level: str = "INFO"

    @property
    def load(self) -> Load:
        return Load(self.messages, self.sessions, self.size, self.recipients, self.reuse)


def check_prerequisites(options: Options) -> list[str]:
    """Why the benchmark cannot run here (empty when it can). Installs nothing."""
    problems = []
    if missing := missing_tools():
        problems.append(
            f"missing {', '.join(missing)}: install Debian's package 'postfix' "
            "(apt-get install postfix) for smtp-source, smtp-sink and Postfix itself"
        )
    if POSTFIX in options.systems and os.geteuid() != 0:
        problems.append("`postfix start` needs root: run as root or use --systems postline")
    postline = any(system.startswith(POSTLINE) for system in options.systems)
    if postline and rabbitmq_pid() is None and not _broker_answers():
        problems.append(f"no RabbitMQ answers at {BROKER} (make broker)")
    return problems


def _broker_answers() -> bool:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(BROKER)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 2):
            return True
    except OSError:
        return False


def rabbitmq_pid() -> int | None:
    """The pid of the process listening on the broker's port (RabbitMQ's beam.smp)."""
    from urllib.parse import urlsplit

    port = urlsplit(BROKER).port or 5672
    result = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    match = re.search(r"pid=(\d+)", result.stdout)
    return int(match.group(1)) if match else None


def describe_machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    load = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, CPU {model.group(1) if model else '?'}, "
        f"Python {platform.python_version()}, load average {load[0]:.2f} at start"
    )


def run_all(options: Options) -> list[RunResult]:
    """``runs`` rounds of every system, alternating; print and return the results."""
    print(f"machine: {describe_machine()}")
    load = options.load
    connections = "reused connections" if load.reuse else "a new connection per message"
    print(
        f"load: {load.messages} messages of {load.size} bytes, {load.recipients} recipient(s), "
        f"{load.sessions} sessions, {connections}"
    )
    results = []
    for number in range(1, options.runs + 1):
        for system in options.systems:
            result = run_one(options, system, number)
            print(
                f"{system} run {number}: accept {result.accept_rate:.0f} msgs/s, end-to-end "
                f"{result.end_to_end_rate:.0f} msgs/s, lost {result.lost}",
                flush=True,
            )
            results.append(result)
    print_report(results)
    return results


def run_one(options: Options, system: str, number: int) -> RunResult:
    safe = re.sub(r"[^A-Za-z0-9]+", "-", system)
    workdir = Path(tempfile.mkdtemp(prefix=f"postline-compare-{safe}-"))
    smtp_port, sink_port = free_port(), free_port()
    sink = Sink(sink_port)
    sampler = Sampler()
    sampler.watch(os.getpid(), "bench probe")
    sampler.watch(sink.pid, "smtp-sink")
    profilers: list[subprocess.Popen[bytes]] = []
    mta: PostfixRelay | PostlineStack
    if system == POSTFIX:
        mta = PostfixRelay(workdir, smtp_port, sink_port)
    else:
        code = Path(system.split("@", 1)[1]) if "@" in system else None
        mta = PostlineStack(workdir, smtp_port, sink_port, code, options.log_level)
    try:
        if isinstance(mta, PostfixRelay):
            mta.configure()
            sampler.watch(mta.start(), "postfix", by_name=True)
        else:
            for name, pid in mta.start().items():
                sampler.watch(pid, f"postline {name}")
                if options.profile is not None:
                    profilers.append(_py_spy(options.profile / f"{name}-{number}.txt", pid))
            if (broker := rabbitmq_pid()) is not None:
                sampler.watch(broker, "rabbitmq")
        return _measure(options, system, number, mta, sink, sampler)
    finally:
        for profiler in profilers:  # py-spy writes its file on SIGINT
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        mta.stop()  # also after a failed start: nothing of the run is left running
        if isinstance(mta, PostlineStack):
            mta.close()
        sink.close()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


def _py_spy(output: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` into ``output`` (collapsed stacks) until SIGINT."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100"]
    return subprocess.Popen(
        [*command, "--nonblocking", "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _measure(
    options: Options,
    system: str,
    number: int,
    mta: PostfixRelay | PostlineStack,
    sink: Sink,
    sampler: Sampler,
) -> RunResult:
    load = options.load
    cpu_before = machine_cpu_seconds()
    sampler.start()
    submitted = asyncio.run(
        submit(load, mta.smtp_port, lambda pid: sampler.watch(pid, "smtp-source"))
    )
    expected = load.messages + submitted.probes_accepted
    done_at = sink.wait_for(expected, options.stall)
    received = sink.count
    recipients = load.messages * load.recipients + submitted.probes_accepted
    delays = mta.delays(recipients) if isinstance(mta, PostlineStack) else mta.delays()
    cpu_seconds = machine_cpu_seconds() - cpu_before
    processes = sampler.stop()
    if done_at is None:  # stalled: the rate of what did arrive
        done_at = sink.last_arrival
    return RunResult(
        system=system,
        run=number,
        messages=load.messages,
        accept_rate=load.messages / submitted.seconds,
        end_to_end_rate=min(received, load.messages) / (done_at - submitted.started),
        accept_ms=p50_p99_ms(submitted.probe_latencies),
        queued_ms=p50_p99_ms(delays),
        machine_cpu_per_1000=cpu_seconds / load.messages * 1000,
        lost=max(expected - received, 0),
        duplicates=max(received - expected, 0),
        probes=submitted.probes_accepted,
        processes=processes,
    )
