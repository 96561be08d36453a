"""A bulk ``queue retry`` of 500 deferred messages survives kill -9 of delivery and of the CLI.

The four services run as separate processes (``tests.cluster.scenario.Services``)
so delivery can be killed alone. 500 messages, each with a ledger id and a
recipient of its own at a broken domain, are deferred once into a ten-minute
tier. The destination comes back; ``postline queue retry --domain D --yes``
starts, and then:

* kill -9 of the CLI once it has sent two chunks of ids, and of delivery once
  the sink has some of the retried messages (delivery is started again);
* or kill -9 of audit (the API and the flusher) once the sink has some of the
  retried messages, while the flush walks the tier (audit is started again).

Then (ledger oracle): every message the index shows with an operator
``retry`` is delivered, and every accepted message is delivered or still
deferred, the index agreeing with the sink: none lost. Running the same
command again delivers the rest. In the end every accepted message reached
the sink; duplicates are at most the messages delivery had in flight when it
was killed (``[delivery] concurrency``), and none at all when only audit was
killed: a flushed copy is acted on at most once (the done markers).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.app.settings import load_settings, topology_for
from tests.cluster.scenario import Services
from tests.e2e.conftest import SINK_IP, relay_sections
from tests.e2e.queue_support import FixableSink, unique
from tests.support.broker import delete_topology, new_namespace
from tests.support.dns_server import DnsServer
from tests.support.ledger import TEST_ID, Ledger
from tests.support.relay import RelayProcess, child_env, eventually, postline_argv
from tests.support.trace_cli import Json, api

pytestmark = pytest.mark.e2e
COUNT = 500
CONCURRENCY = 16
PAGE_POLL = 0.5  # s between questions that cost the API a page of 500 messages


@pytest.fixture
def sink(smtp_port: int) -> Iterator[FixableSink]:
    """A sink of each test's own: the ledger reconciles only what this test sent."""
    with FixableSink(host=SINK_IP, port=smtp_port) as server:
        yield server


@pytest.fixture
def services(
    tmp_path: Path, dns: DnsServer, sink: FixableSink, smtp_port: int
) -> Iterator[Services]:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["delivery"].update(
        retry_schedule="10m", max_queue_lifetime="1h", concurrency=CONCURRENCY
    )
    running = Services(tmp_path, sections)
    try:
        running.start()
        yield running
        assert running.stop() == dict.fromkeys(running.processes, 0), running.logs()
    finally:
        running.kill()
        settings = load_settings(running.audit.config_path)
        asyncio.run(delete_topology(topology_for(settings)))


def submit_all(ledger: Ledger, port: int, domain: str) -> None:
    """``COUNT`` messages, one recipient each, from six clients at once."""
    numbers = iter(range(COUNT))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            ledger.submit(port, f"u{n}@{domain}")

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def messages_of(audit: RelayProcess, **query: str) -> list[Json]:
    """Every message of the index for ``query`` (all pages)."""
    found: list[Json] = []
    cursor = ""
    while True:
        page = api(audit, **query, limit="500", **({"cursor": cursor} if cursor else {}))
        found += page.get("messages") or []
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return found


def by_recipient(messages: list[Json]) -> dict[str, Json]:
    return {m["recipients"][0]["address"]: m for m in messages if m.get("recipients")}


def retried(message: Json) -> bool:
    return any(
        e.get("kind") == "operator" and e.get("action") == "retry" for e in message["events"]
    )


def stored_ids(sink: FixableSink) -> dict[str, int]:
    seen: dict[str, int] = {}
    for message in list(sink.messages):
        for match in TEST_ID.finditer(message.data):
            key = match.group(1).decode()
            seen[key] = seen.get(key, 0) + 1
    return seen


def after_the_kills(
    audit: RelayProcess, sink: FixableSink, ledger: Ledger, domain: str
) -> dict[str, Any]:
    """Delivered and still-deferred counts, and the messages in neither state, or whose
    index state disagrees with the sink, or that have a retry event but are not delivered."""
    messages = by_recipient(messages_of(audit, domain=domain))
    at_sink = {ledger.accepted[test_id] for test_id in stored_ids(sink)}
    unsettled = [
        (rcpt, message.get("state") if message else None)
        for rcpt in ledger.accepted.values()
        if (message := messages.get(rcpt)) is None
        or message["state"] != ("delivered" if rcpt in at_sink else "deferred")
        or (retried(message) and message["state"] != "delivered")
    ]
    return {
        "delivered": len(at_sink),
        "waiting": len(messages) - len(at_sink),
        "unsettled": unsettled,
    }


def retry_command(audit: RelayProcess, domain: str) -> list[str]:
    return postline_argv(audit.config_path, "queue", "retry", "--domain", domain, "--yes")


def kill_after(cli: subprocess.Popen[str], requested: int) -> list[str]:
    """Read the CLI's progress lines; SIGKILL it once it says ``requested`` ids were sent."""
    assert cli.stderr is not None
    said: list[str] = []
    for line in cli.stderr:
        said.append(line.rstrip("\n"))
        if line.startswith("requested ") and int(line.split()[1].split("/")[0]) >= requested:
            break
    cli.kill()
    cli.wait(10)
    return said


def deferred_bulk(services: Services, sink: FixableSink, dns: DnsServer) -> tuple[Ledger, str]:
    """``COUNT`` messages deferred into the ten-minute tier, then the destination fixed."""
    domain = f"{unique('bulk')}.test"
    dns.add_mx(domain, 10, "mx.ok.test")
    sink.broken.add(domain)
    ledger = Ledger()
    submit_all(ledger, services.ingress.smtp_port, domain)
    assert len(ledger.accepted) == COUNT, (ledger.refused, ledger.errors)
    eventually(
        lambda: len(messages_of(services.audit, state="deferred", domain=domain)) == COUNT,
        120,
        f"{COUNT} messages deferred",
        interval=PAGE_POLL,
    )
    sink.broken.discard(domain)
    return ledger, domain


def start_retry(audit: RelayProcess, domain: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        retry_command(audit, domain), env=child_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def kill_and_restart(process: RelayProcess) -> None:
    assert process.process is not None
    process.process.kill()
    process.process.wait(10)
    process.start()


def none_lost_then_finish(
    audit: RelayProcess, sink: FixableSink, ledger: Ledger, domain: str
) -> Any:
    """Wait until every message is delivered or deferred (index and sink agreeing), run the
    retry again, wait until the ledger has lost nothing; the ledger's report."""
    snapshot: dict[str, Any] = {}

    def quiet() -> bool:
        snapshot.update(after_the_kills(audit, sink, ledger, domain))
        return not snapshot["unsettled"]

    try:
        eventually(
            quiet, 90, "every message delivered or deferred, and the index agreeing", PAGE_POLL
        )
    except AssertionError as error:
        raise AssertionError(f"{error}: {snapshot['unsettled'][:10]}") from None
    delivered, waiting = snapshot["delivered"], snapshot["waiting"]
    print(f"after the kills: delivered {delivered}, still deferred {waiting}")
    assert delivered > 0 and delivered + waiting == COUNT

    again = subprocess.run(
        retry_command(audit, domain), env=child_env(), text=True, capture_output=True,
        timeout=180, check=False,
    )  # fmt: skip
    print(again.stdout, again.stderr)
    assert again.returncode in (0, 1), again.stderr  # 1: nothing was left to retry
    report: Any = None

    def all_delivered() -> bool:
        nonlocal report
        report = ledger.reconcile(list(sink.messages), set())
        return not report.lost

    eventually(all_delivered, 90, "every accepted message delivered", PAGE_POLL)
    print(f"bulk retry under kill -9: {report}")
    assert report.unknown == []
    return report


def test_kill_9_of_delivery_and_of_the_cli_during_a_bulk_retry_loses_nothing(
    services: Services, sink: FixableSink, dns: DnsServer
) -> None:
    ledger, domain = deferred_bulk(services, sink, dns)
    cli = start_retry(services.audit, domain)
    print("CLI said before SIGKILL:", kill_after(cli, 200))
    eventually(lambda: len(stored_ids(sink)) >= 40, 60, "retried messages reaching the sink")
    kill_and_restart(services.processes["delivery"])
    report = none_lost_then_finish(services.audit, sink, ledger, domain)
    assert report.duplicates <= CONCURRENCY, f"{report.duplicates} duplicates"


def test_kill_9_of_audit_during_a_bulk_retry_flush_delivers_each_message_exactly_once(
    services: Services, sink: FixableSink, dns: DnsServer
) -> None:
    ledger, domain = deferred_bulk(services, sink, dns)
    cli = start_retry(services.audit, domain)
    eventually(lambda: len(stored_ids(sink)) >= 50, 60, "flushed copies reaching the sink")
    kill_and_restart(services.audit)  # the API and the flusher, in the middle of the walk
    cli.kill()  # it would wait for requests the new audit process never heard of
    cli.wait(10)
    report = none_lost_then_finish(services.audit, sink, ledger, domain)
    assert report.duplicates == 0, "a flushed copy was delivered twice"
