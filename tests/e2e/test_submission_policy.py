"""Who may submit: relay rights, AUTH only over TLS, and 451 when the broker is away."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.ingress.users import add_user
from tests.e2e.conftest import relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.certs import client_tls, make_cert
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e
PASSWORD = "e2e secret password"
MESSAGE = b"Subject: policy\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def tls_relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> Iterator[RelayProcess]:
    """A relay with STARTTLS and a users file; only 127.0.0.1 may relay without AUTH."""
    workdir = tmp_path_factory.mktemp("tls-relay")
    cert, key = make_cert(workdir / "tls", name="relay.test")
    users = workdir / "users.toml"
    add_user(users, "alice", PASSWORD, ["alice@example.org"])
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["ingress"].update(tls_cert=str(cert), tls_key=str(key), users_file=str(users))
    with running_relay(workdir, sections) as process:
        yield process


def client(relay: RelayProcess, source: str = "127.0.0.1") -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10, source_address=(source, 0))
    smtp.ehlo("client.test")
    return smtp


def test_relay_refused_for_unauthenticated_client_outside_relay_networks(
    tls_relay: RelayProcess,
) -> None:
    with client(tls_relay, source="127.0.0.5") as smtp:
        assert smtp.mail("anyone@example.org")[0] == 250
        code, text = smtp.rcpt("victim@ok.test")
        assert (code, text[:5]) == (554, b"5.7.1")
        code, _ = smtp.docmd("DATA")
        assert code == 503  # never reaches DATA without a recipient


def test_auth_over_starttls_is_accepted_and_the_user_may_relay(
    tls_relay: RelayProcess, sink: SmtpSink
) -> None:
    with client(tls_relay, source="127.0.0.5") as smtp:
        smtp.starttls(context=client_tls())
        smtp.ehlo("client.test")
        assert "auth" in smtp.esmtp_features
        assert smtp.login("alice", PASSWORD)[0] == 235
        smtp.sendmail("alice@example.org", ["auth-e2e@ok.test"], MESSAGE)
    eventually(
        lambda: any("auth-e2e@ok.test" in m.rcpt_tos for m in list(sink.messages)),
        20,
        "the authenticated user's message at the sink",
    )


def test_auth_over_plaintext_is_not_offered_and_refused(tls_relay: RelayProcess) -> None:
    with client(tls_relay, source="127.0.0.5") as smtp:
        assert "auth" not in smtp.esmtp_features
        code, text = smtp.docmd("AUTH", "PLAIN AGFsaWNlAGUyZSBzZWNyZXQgcGFzc3dvcmQ=")
        assert (code, text[:6]) == (538, b"5.7.11")


def test_broker_unreachable_answers_451_and_never_250(
    tmp_path: Path, dns: DnsServer, smtp_port: int
) -> None:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["broker"].update(url="amqp://guest:guest@127.0.0.1:1/", publish_timeout="1s")
    with running_relay(tmp_path, sections, wait_ready=False) as relay:
        eventually(lambda: relay.http_status("ingress", "/healthz") == 200, 20, "ingress up")
        assert relay.http_status("ingress", "/readyz") == 503
        with client(relay) as smtp:
            smtp.mail("sender@example.org")
            assert smtp.rcpt("someone@ok.test")[0] == 250
            code, text = smtp.data(MESSAGE)
        assert (code, text[:5]) == (451, b"4.3.0")
