"""``postline queue`` against real queues: list, retry, delete, bounce, hold, release, parked mail.

One ``postline run`` process (all four services, its audit API on a free
port) relays to the test DNS server and a ``FixableSink``: mail for a domain
in ``sink.broken`` is answered ``451 4.4.2 Down for maintenance``. Retries
are ``1s, 1s, 10m``, so a deferred message settles after three attempts in a
ten-minute tier: an action that gets it delivered within seconds did it, not
the tier's TTL. ``delay_warning_after`` is 1.5 s (one delay DSN per message;
messages sent with ``NOTIFY=FAILURE`` get none). The filter chain holds
``BreakWhileFlagged``, which makes the broker park a message by its delivery
limit while a flag file exists. Each test uses a domain and a sender of its
own, runs the CLI as the operator does (``python -m postline.app --config
FILE queue ...``) and checks the API, the trail files and the sink. A delete
that comes while the attempt is at the sink (``slowN`` holds the end-of-data
reply) must be reported as already delivered, never as done.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.conftest import SINK_IP, relay_sections, running_relay
from tests.e2e.queue_support import (
    BREAK_HEADER,
    FixableSink,
    events_of,
    message_of,
    queue,
    recipient_of,
    submit,
    unique,
    wait_message,
)
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, child_env, eventually, postline_argv
from tests.support.trace_cli import Json, trace

pytestmark = pytest.mark.e2e
SETTLED_ATTEMPTS = 3
RACE_SECONDS = 6
TIER_SECONDS = 600
USER = getpass.getuser()


@pytest.fixture(scope="module")
def sink(smtp_port: int) -> Iterator[FixableSink]:
    with FixableSink(host=SINK_IP, port=smtp_port) as server:
        yield server


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: FixableSink, smtp_port: int
) -> Iterator[RelayProcess]:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["delivery"].update(
        retry_schedule="1s,1s,10m", max_queue_lifetime="1h", delay_warning_after="1.5s"
    )
    sections["filter"] = {"chain": ["headers", "tests.e2e.queue_support:BreakWhileFlagged"]}
    with running_relay(tmp_path_factory.mktemp("queue-relay"), sections) as process:
        yield process


@pytest.fixture
def domain(dns: DnsServer, sink: FixableSink) -> Iterator[str]:
    """A recipient domain of this test's own, served by the sink, broken at first."""
    name = f"{unique('d')}.test"
    dns.add_mx(name, 10, "mx.ok.test")
    sink.broken.add(name)
    yield name
    sink.broken.discard(name)


def settled(message: Json) -> bool:
    """Deferred three times and now in the ten-minute tier."""
    recipient = recipient_of(message)
    return message.get("state") == "deferred" and recipient.get("attempts") == SETTLED_ATTEMPTS


def in_state(state: str) -> Callable[[Json], bool]:
    def holds(message: Json) -> bool:
        return message.get("state") == state

    return holds


def deferred(
    relay: RelayProcess, sender: str | list[str], rcpts: list[str], notify: str | None = None
) -> list[str]:
    """Submit one message per recipient (from ``sender``, or the sender of the same place in
    a list) and wait until each is settled; their ids."""
    senders = sender if isinstance(sender, list) else [sender] * len(rcpts)
    for each, rcpt in zip(senders, rcpts, strict=True):
        submit(relay, each, rcpt, notify=notify)
    return [
        wait_message(relay, rcpt, settled, "three attempts, then the long tier")["message_id"]
        for rcpt in rcpts
    ]


def trail_lines(relay: RelayProcess, trail: str, message_id: str) -> list[Json]:
    return [line for line in relay.trail(trail) if line.get("message_id") == message_id]


def operator_lines(relay: RelayProcess, message_id: str, action: str) -> list[Json]:
    return [
        line
        for line in trail_lines(relay, "queue", message_id)
        if line.get("kind") == "operator" and line.get("action") == action
    ]


def last_line(result: object) -> str:
    lines = str(getattr(result, "stdout", "")).strip().splitlines()
    return lines[-1] if lines else ""


def test_deferred_messages_are_listed_with_their_attempts_and_last_reply(
    relay: RelayProcess, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpts = [f"r{n}@{domain}" for n in range(3)]
    ids = deferred(relay, sender, rcpts)

    result = queue(relay, "list", "--domain", domain)
    assert result.returncode == 0, result.stderr
    head, *rows = result.stdout.splitlines()
    assert head.split()[:4] == ["ID", "AGE", "TRIES", "NEXT"]
    assert sorted(row.split()[0] for row in rows) == sorted(ids)
    for row in rows:
        assert re.search(rf"\s{SETTLED_ATTEMPTS}\s+in (9m|10m)", row), row
        assert f"<{sender}>" in row and row.endswith("451 4.4.2 Down for maintenance")
    assert {row.split(f"<{sender}>  ")[1].split("  ")[0] for row in rows} == set(rcpts)

    listed = json.loads(queue(relay, "list", "--domain", domain, "--json").stdout)["messages"]
    assert sorted(item["id"] for item in listed) == sorted(ids)
    assert all(item["attempts"] == SETTLED_ATTEMPTS for item in listed)
    assert all(item["last_reply"]["code"] == 451 for item in listed)

    assert queue(relay, "list", "--domain", domain, "--reply", "maintenance").returncode == 0
    nothing = queue(relay, "list", "--domain", domain, "--reply", "no such reply")
    assert nothing.returncode == 1 and nothing.stdout == ""
    assert queue(relay, "list", "--domain", domain, "--state", "held").returncode == 1


def test_retry_by_domain_delivers_within_seconds_once_the_destination_is_back(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpts = [f"r{n}@{domain}" for n in range(3)]
    ids = deferred(relay, sender, rcpts)
    sink.broken.discard(domain)

    started = time.monotonic()
    result = queue(relay, "retry", "--domain", domain, "--yes", "--reason", "back up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "3 messages match"
    assert last_line(result) == "done 3, no longer waiting 0, still pending 0"
    eventually(lambda: all(sink.stored_for(r) for r in rcpts), 20, "the retried messages")
    assert time.monotonic() - started < TIER_SECONDS / 20  # seconds, not the tier's TTL
    assert all(len(sink.stored_for(r)) == 1 for r in rcpts)

    for rcpt, message_id in zip(rcpts, ids, strict=True):
        message = wait_message(relay, rcpt, in_state("delivered"), "delivered")
        [event] = [e for e in events_of(message, "operator") if e.get("action") == "retry"]
        assert event["actor"] == USER and event["reason"] == "back up"
        eventually(partial(operator_lines, relay, message_id, "retry"), 10, "the trail line")
        [line] = operator_lines(relay, message_id, "retry")
        assert line["actor"] == USER and line["reason"] == "back up"
    assert queue(relay, "list", "--domain", domain).returncode == 1  # nothing waits any more
    traced = trace(relay, rcpts[0])
    assert traced.returncode == 0 and f"operator {USER}: retry" in traced.stdout


def test_a_delete_racing_a_delivery_attempt_is_reported_as_already_delivered(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpt = f"slow{RACE_SECONDS}-{unique()}@{domain}"  # the sink takes that long after DATA
    [message_id] = deferred(relay, sender, [rcpt])
    sink.broken.discard(domain)
    argv = postline_argv(relay.config_path, "queue", "retry", message_id)
    retry = subprocess.Popen(argv, env=child_env(), stdout=subprocess.DEVNULL)
    try:
        eventually(lambda: (rcpt, 250) in sink.attempts, 20, "the attempt to be under way")
        result = queue(relay, "delete", message_id, "--reason", "too late")
    finally:
        retry.wait(60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [
        f"no longer waiting: {message_id} (delivered)",
        "done 0, no longer waiting 1, still pending 0",
    ]
    assert len(sink.stored_for(rcpt)) == 1
    message = wait_message(relay, rcpt, in_state("delivered"), "delivered")
    assert not [e for e in events_of(message, "operator") if e.get("action") == "delete"]
    assert not trail_lines(relay, "failure", message_id)


def test_delete_by_id_and_by_filter_after_a_dry_run_leaves_failure_lines_and_no_dsn(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpts = [f"r{n}@{domain}" for n in range(3)]
    first, *others = deferred(relay, sender, rcpts, notify="FAILURE")

    dry = queue(relay, "delete", first, "--dry-run")
    assert dry.returncode == 0 and dry.stdout == f"1 message matches\n  {first}\n"
    assert settled(message_of(relay, rcpts[0]) or {})  # a dry run changes nothing
    by_id = queue(relay, "delete", first, "--reason", "sent by mistake")
    assert last_line(by_id) == "done 1, no longer waiting 0, still pending 0", by_id.stderr

    dry = queue(relay, "delete", "--sender", sender, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines()[0] == "2 messages match"
    assert sorted(dry.stdout.splitlines()[1:]) == sorted(f"  {i}" for i in others)
    by_filter = queue(relay, "delete", "--sender", sender, "--yes", "--reason", "spam run")
    assert last_line(by_filter) == "done 2, no longer waiting 0, still pending 0"

    for rcpt, message_id, reason in zip(
        rcpts, [first, *others], ["sent by mistake", "spam run", "spam run"], strict=True
    ):
        wait_message(relay, rcpt, in_state("deleted"), "deleted")
        eventually(partial(trail_lines, relay, "failure", message_id), 10, "the failure line")
        [line] = trail_lines(relay, "failure", message_id)
        assert line["recipient"] == rcpt and line["reason"] == f"deleted by operator: {reason}"
        assert operator_lines(relay, message_id, "delete")

    sink.broken.discard(domain)  # a deleted message is never delivered, even now
    control = f"permfail-{unique()}@ok.test"  # its bounce comes after any DSN a delete sent
    submit(relay, sender, control, notify="FAILURE")
    eventually(lambda: sink.dsns_to(sender), 20, "the control message's bounce")
    [dsn] = sink.dsns_to(sender)
    assert control in dsn
    assert not any(sink.stored_for(rcpt) for rcpt in rcpts)
    assert all(not events_of(message_of(relay, r) or {}, "dsn_sent") for r in rcpts)


def test_bounce_by_id_and_by_filter_after_a_dry_run_sends_the_sender_a_dsn(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    senders = [f"{unique('s')}@ok.test" for _ in range(2)]
    by_id_rcpt, by_filter_rcpt = f"one@{domain}", f"two@{domain}"
    bounced_by_id, bounced_by_filter = deferred(
        relay, senders, [by_id_rcpt, by_filter_rcpt], notify="FAILURE"
    )

    assert queue(relay, "bounce", bounced_by_id, "--dry-run").stdout.startswith("1 message matches")
    result = queue(relay, "bounce", bounced_by_id, "--reason", "partner gone")
    assert last_line(result) == "done 1, no longer waiting 0, still pending 0", result.stderr
    dry = queue(relay, "bounce", "--rcpt", by_filter_rcpt, "--dry-run")
    assert dry.stdout == f"1 message matches\n  {bounced_by_filter}\n"
    result = queue(relay, "bounce", "--rcpt", by_filter_rcpt, "--reason", "partner gone")
    assert last_line(result) == "done 1, no longer waiting 0, still pending 0", result.stderr

    for sender, rcpt, message_id in (
        (senders[0], by_id_rcpt, bounced_by_id),
        (senders[1], by_filter_rcpt, bounced_by_filter),
    ):
        eventually(partial(sink.dsns_to, sender), 20, f"the DSN to {sender}")
        [dsn] = sink.dsns_to(sender)
        assert "Action: failed" in dsn and rcpt in dsn
        assert "550 5.0.0 bounced by operator: partner gone" in dsn
        wait_message(relay, rcpt, in_state("bounced"), "bounced")
        eventually(partial(trail_lines, relay, "failure", message_id), 10, "the failure line")
        reasons = [line["reason"] for line in trail_lines(relay, "failure", message_id)]
        assert any(reason.startswith("bounced by operator") for reason in reasons), reasons
        assert not sink.stored_for(rcpt)


def test_hold_keeps_a_message_from_every_attempt_until_release_attempts_it_at_once(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpt = f"held@{domain}"
    [message_id] = deferred(relay, sender, [rcpt])
    result = queue(relay, "hold", message_id, "--reason", "partner asked")
    assert last_line(result) == "done 1, no longer waiting 0, still pending 0", result.stderr
    wait_message(relay, rcpt, in_state("held"), "held")
    listed = queue(relay, "list", "--state", "held", "--domain", domain)
    [row] = listed.stdout.splitlines()[1:]
    assert row.startswith(message_id) and f"held by {USER}: partner asked" in row
    assert queue(relay, "list", "--domain", domain).returncode == 1  # not deferred any more

    sink.broken.discard(domain)
    offered = len([a for a in sink.attempts if a[0] == rcpt])
    retry = queue(relay, "retry", "--state", "deferred", "--domain", domain, "--yes")
    assert retry.returncode == 1 and retry.stdout == "0 messages match\n"
    assert not sink.stored_for(rcpt)

    released = queue(relay, "release", message_id)
    assert last_line(released) == "done 1, no longer waiting 0, still pending 0"
    eventually(lambda: sink.stored_for(rcpt), 20, "the released message")
    assert len([a for a in sink.attempts if a[0] == rcpt]) == offered + 1  # one attempt
    message = wait_message(relay, rcpt, in_state("delivered"), "delivered")
    assert [e["action"] for e in events_of(message, "operator")] == ["hold", "release"]
    assert operator_lines(relay, message_id, "hold") and operator_lines(
        relay, message_id, "release"
    )


def test_a_message_parked_by_its_delivery_limit_is_listed_and_released_back_to_its_stage(
    relay: RelayProcess, sink: FixableSink, tmp_path: Path
) -> None:
    flag = tmp_path / "filter-broken"
    flag.touch()
    sender, rcpt = f"{unique('s')}@ok.test", f"{unique('parked')}@ok.test"
    submit(relay, sender, rcpt, f"{BREAK_HEADER}: {flag}")
    message = wait_message(relay, rcpt, in_state("parked"), "parked", timeout=40)
    message_id = message["message_id"]
    [parked] = events_of(message, "parked")
    assert parked["stage"] == "submit" and "delivery_limit" in parked["reason"]

    listed = queue(relay, "list", "--state", "parked")
    [row] = [r for r in listed.stdout.splitlines() if r.startswith(message_id)]
    assert "parked from submit: delivery_limit" in row and f"<{sender}>" in row
    assert any(line["kind"] == "parked" for line in trail_lines(relay, "queue", message_id))

    flag.unlink()  # the filter is fixed
    result = queue(relay, "release", message_id, "--reason", "filter fixed")
    assert last_line(result) == "done 1, no longer waiting 0, still pending 0", result.stderr
    eventually(lambda: sink.stored_for(rcpt), 30, "the released message, filtered again")
    assert len(sink.stored_for(rcpt)) == 1
    wait_message(relay, rcpt, in_state("delivered"), "delivered")
    assert queue(relay, "list", "--state", "parked", "--rcpt", rcpt).returncode == 1


def test_a_delay_warning_dsn_arrives_once_with_the_last_reply(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    rcpt = f"waiting@{domain}"
    [message_id] = deferred(relay, sender, [rcpt])
    eventually(lambda: sink.dsns_to(sender), 20, "the delay warning")
    [warning] = sink.dsns_to(sender)
    assert "Action: delayed" in warning and "Will-Retry-Until:" in warning
    assert "Status: 4.4.2" in warning and "Down for maintenance" in warning and rcpt in warning

    retry = queue(relay, "retry", message_id)  # one more deferral: no second warning
    assert last_line(retry) == "done 1, no longer waiting 0, still pending 0", retry.stderr
    message = wait_message(
        relay, rcpt, lambda m: recipient_of(m).get("attempts") == SETTLED_ATTEMPTS + 1, "4th try"
    )
    assert len(events_of(message, "delayed")) == 1
    lines = trail_lines(relay, "queue", message_id)
    assert len([line for line in lines if line["kind"] == "delayed"]) == 1
    assert len(sink.dsns_to(sender)) == 1


def test_no_delay_warning_without_delay_in_notify(
    relay: RelayProcess, sink: FixableSink, domain: str
) -> None:
    sender = f"{unique('s')}@ok.test"
    [message_id] = deferred(relay, sender, [f"quiet@{domain}"], notify="FAILURE")
    bounce = queue(relay, "bounce", message_id)  # the only DSN this sender gets
    assert last_line(bounce) == "done 1, no longer waiting 0, still pending 0", bounce.stderr
    eventually(lambda: sink.dsns_to(sender), 20, "the bounce")
    [dsn] = sink.dsns_to(sender)
    assert "Action: failed" in dsn and "Action: delayed" not in dsn
