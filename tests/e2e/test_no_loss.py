"""Zero loss after 250, proven with the ledger oracle under crashes and broker restarts."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.ledger import Ledger, Report
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e


def load(ledger: Ledger, port: int, target: int, stop: threading.Event) -> None:
    """Six concurrent clients submit until ``target`` messages are accepted (or ``stop``)."""
    counter = itertools.count()

    def client() -> None:
        while not stop.is_set() and len(ledger.accepted) < target:
            before = len(ledger.accepted)
            n = next(counter)
            ledger.submit(port, f"user{n % 7}-{n}@ok.test")
            if len(ledger.accepted) == before:
                stop.wait(0.05)  # refused or unreachable: don't spin

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def settle(relay: RelayProcess, ledger: Ledger, sink: SmtpSink, within: float) -> Report:
    def failed() -> set[str]:
        return {str(line.get("recipient")) for line in relay.trail("failure")}

    def report() -> Report:
        return ledger.reconcile(list(sink.messages), failed())

    eventually(lambda: not report().lost, within, "every accepted message to be delivered")
    return report()


def under_load(relay: RelayProcess, ledger: Ledger, count: int, fault: Callable[[], None]) -> None:
    """Load until ``count`` are accepted; inject ``fault`` once a quarter of them are."""
    stop = threading.Event()
    loader = threading.Thread(target=load, args=(ledger, relay.smtp_port, count, stop))
    loader.start()
    try:
        eventually(lambda: len(ledger.accepted) >= count // 4, 60, "load to get going")
        fault()
        eventually(lambda: not loader.is_alive(), 120, f"{count} messages accepted")
    finally:
        stop.set()
        loader.join(30)


def test_kill_9_of_the_whole_relay_under_load_loses_nothing_accepted(
    tmp_path: Path, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> None:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    ledger = Ledger()
    with running_relay(tmp_path, sections) as relay:

        def crash_and_restart() -> None:
            assert relay.process is not None
            relay.process.kill()  # SIGKILL: no drain, unacked work returns to the queues
            relay.process.wait()
            relay.start()

        under_load(relay, ledger, 240, crash_and_restart)
        report = settle(relay, ledger, sink, 90)
        assert report.lost == [], f"lost {len(report.lost)} of {report.accepted}"
        assert report.accepted >= 240
        print(
            f"kill -9: accepted {report.accepted}, duplicates {report.duplicates}, "
            f"refused {dict(ledger.refused)}, client errors {ledger.errors}"
        )


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
def test_broker_restart_under_load_loses_nothing_and_services_recover_on_their_own(
    tmp_path: Path, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> None:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    ledger = Ledger()
    with running_relay(tmp_path, sections) as relay:

        def restart_broker() -> None:
            subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
            time.sleep(2)  # an outage of a known length, not a wait for a condition
            subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
            subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True)

        under_load(relay, ledger, 300, restart_broker)
        report = settle(relay, ledger, sink, 120)
        assert report.lost == [], f"lost {len(report.lost)} of {report.accepted}"
        assert not {code for code in ledger.refused if code != 451}, ledger.refused
        eventually(relay.ready, 60, "every service ready again")
        ledger_after = Ledger()
        ledger_after.submit(relay.smtp_port, "after-restart@ok.test")
        assert len(ledger_after.accepted) == 1
        print(
            f"broker restart: accepted {report.accepted}, duplicates {report.duplicates}, "
            f"refused {dict(ledger.refused)}, client errors {ledger.errors}"
        )
