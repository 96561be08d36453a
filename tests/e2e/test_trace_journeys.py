"""Six journeys through a real relay, each traced by the CLI and the API with the right diagnosis.

One ``postline run`` process (its audit API on a free port) relays to the
test DNS server and the sink; a custom filter module
(``tests.support.trace_filter``) is in ``[filter] chain``; retries are 1 s
apart and mail expires after ``LIFETIME``. Each test submits with smtplib,
waits until the API shows the expected state, then checks the ``trace``
text (the steps and the ``Diagnosis:`` line) and that ``trace --json`` prints
the API's own document.
"""

from __future__ import annotations

import json
import smtplib
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import SINK_IP, relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess
from tests.support.sink import SmtpSink
from tests.support.trace_cli import Json, api, diagnoses, steps, trace, wait_for_state

pytestmark = pytest.mark.e2e
SENDER = "mary@example.org"
LIFETIME = "6s"
DEAD_MX = "127.0.0.4"  # nothing listens there: connections are refused
OUTSIDE = "127.0.0.5"  # not in relay_networks
ALL_STEPS = ["1 submitted", "2 received", "3 filters", "4 delivered"]
FAILED_STEPS = ["1 submitted", "2 received", "3 filters", "4 not"]


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> Iterator[RelayProcess]:
    dns.add_mx("refused.test", 10, "mx.refused.test")
    dns.add_a("mx.refused.test", DEAD_MX)
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["delivery"].update(retry_schedule="1s", max_queue_lifetime=LIFETIME)
    sections["filter"] = {"chain": ["headers", "tests.support.trace_filter:RejectTagged"]}
    with running_relay(tmp_path_factory.mktemp("trace-relay"), sections) as process:
        yield process


def submit(relay: RelayProcess, rcpt: str, *headers: str, source: str = "127.0.0.1") -> str:
    """Send one message; return its Message-ID header value."""
    message_id = f"<{uuid.uuid4().hex}@client.test>"
    head = "".join(f"{h}\r\n" for h in headers)
    body = f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: trace e2e\r\nMessage-ID: {message_id}\r\n"
    body += f"{head}\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10, source_address=(source, 0)) as c:
        c.ehlo("client.test")
        c.sendmail(SENDER, [rcpt], body.encode())
    return message_id


def traced(relay: RelayProcess, target: str) -> str:
    result = trace(relay, target)
    assert result.returncode == 0, result.stderr
    print(f"$ postline trace {target}\n{result.stdout}")  # shown with -s, and on failure
    return result.stdout


def json_matches_api(relay: RelayProcess, target: str, document: Json) -> None:
    """``trace --json`` prints exactly what the API answers for the same query."""
    result = trace(relay, target, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == api(relay, rcpt=target)
    [message] = printed["messages"][:1]
    assert message["message_id"] == document["messages"][0]["message_id"]
    assert message["events"] == sorted(message["events"], key=lambda e: e["at"])
    for key in ("message_id", "state", "mail_from", "received_at", "recipients", "diagnosis"):
        assert key in message


def test_a_delivered_message_is_traced_in_four_steps_ending_with_delivered(
    relay: RelayProcess,
) -> None:
    rcpt = f"john-{uuid.uuid4().hex[:8]}@ok.test"
    header_id = submit(relay, rcpt)
    document = wait_for_state(relay, rcpt, ("delivered",))
    text = traced(relay, rcpt)
    assert steps(text) == ALL_STEPS
    assert "client 127.0.0.1, HELO client.test, not authenticated, no TLS" in text
    assert f"via mx.ok.test[{SINK_IP}]" in text
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith("Diagnosis: delivered: accepted by mx.ok.test (250 ")
    assert diagnosis.endswith("if the recipient cannot find it, the problem is on their side")
    assert text.rstrip("\n").splitlines()[-1] == diagnosis
    assert traced(relay, header_id) == text  # the Message-ID header finds the same message
    json_matches_api(relay, rcpt, document)


def test_a_550_at_rcpt_is_traced_as_refused_by_the_destination_with_its_dsn(
    relay: RelayProcess,
) -> None:
    rcpt = f"permfail-{uuid.uuid4().hex[:8]}@ok.test"
    submit(relay, rcpt)
    document = wait_for_state(relay, rcpt, ("bounced",))
    text = traced(relay, rcpt)
    assert steps(text) == FAILED_STEPS
    assert "550 5.1.1 No such user here" in text
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith("Diagnosis: destination refused: 550 5.1.1 No such user here")
    json_matches_api(relay, rcpt, document)


def test_an_nxdomain_recipient_is_traced_as_mx_not_found(relay: RelayProcess) -> None:
    rcpt = f"john-{uuid.uuid4().hex[:8]}@nxdomain.test"
    submit(relay, rcpt)
    document = wait_for_state(relay, rcpt, ("bounced",))
    text = traced(relay, rcpt)
    assert steps(text) == FAILED_STEPS
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith(
        "Diagnosis: MX record for nxdomain.test not found (NXDOMAIN): the domain does not "
        "exist or has no mail servers; check the address"
    )
    json_matches_api(relay, rcpt, document)


def test_a_destination_refusing_connections_is_deferred_then_expired(
    relay: RelayProcess,
) -> None:
    rcpt = f"john-{uuid.uuid4().hex[:8]}@refused.test"
    submit(relay, rcpt)
    wait_for_state(relay, rcpt, ("deferred",))
    text = traced(relay, rcpt)
    assert steps(text) == FAILED_STEPS
    assert f"via mx.refused.test[{DEAD_MX}]" in text
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith(
        f"Diagnosis: destination not responding: connection to mx.refused.test[{DEAD_MX}]"
    )
    assert " was refused on " in diagnosis and "; next attempt " in diagnosis

    document = wait_for_state(relay, rcpt, ("expired",), timeout=40)
    text = traced(relay, rcpt)
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith(f"Diagnosis: expired: not delivered within {LIFETIME}")
    assert f"last: destination not responding: connection to mx.refused.test[{DEAD_MX}]" in (
        diagnosis
    )
    assert text.count(" attempt ") >= 2  # every attempt is listed in step 3
    json_matches_api(relay, rcpt, document)


def test_a_filter_rejection_is_traced_with_the_filter_and_its_reply(relay: RelayProcess) -> None:
    rcpt = f"john-{uuid.uuid4().hex[:8]}@ok.test"
    submit(relay, rcpt, "X-Test-Verdict: reject")
    document = wait_for_state(relay, rcpt, ("rejected",))
    text = traced(relay, rcpt)
    assert steps(text) == FAILED_STEPS
    assert "550 5.7.1 Rejected by the test policy" in text
    [diagnosis] = diagnoses(text)
    assert diagnosis.startswith(
        "Diagnosis: rejected by filter reject-tagged: X-Test-Verdict: reject "
        "(550 5.7.1 Rejected by the test policy); it was not sent"
    )
    json_matches_api(relay, rcpt, document)


def test_a_client_outside_relay_networks_is_traced_as_refused_at_submission(
    relay: RelayProcess,
) -> None:
    rcpt = f"john-{uuid.uuid4().hex[:8]}@ok.test"
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10, source_address=(OUTSIDE, 0)) as c:
        c.ehlo("printer.local")
        assert c.mail(SENDER)[0] == 250
        assert c.rcpt(rcpt)[0] == 554
    document = wait_for_state(relay, rcpt, ("refused",))
    text = traced(relay, rcpt)
    assert steps(text) == ["1 submitted", "2 received", "3 filters", "4 not"]
    assert f"client {OUTSIDE}, HELO printer.local, not authenticated, no TLS" in text
    assert f"refused RCPT from <{SENDER}> to <{rcpt}>: 554 5.7.1 Relay access denied" in text
    assert "2 received           no: refused at submission, nothing was queued" in text
    assert diagnoses(text) == [
        f"Diagnosis: refused at submission: client {OUTSIDE} is not in relay_networks and "
        "did not authenticate"
    ]
    json_matches_api(relay, rcpt, document)


def test_nothing_matching_is_exit_1_with_one_line(relay: RelayProcess) -> None:
    result = trace(relay, f"nobody-{uuid.uuid4().hex[:8]}@ok.test")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
