"""``postline doctor`` against a working relay, then with one thing broken at a time.

One ``postline run`` relay (real broker, TLS certificate, users file, audit API
with a token) delivers to a TLS sink on loopback, found through a test DNS
server. The doctor runs as a real ``postline`` process with the relay's own
configuration (every line ``PASS``, exit 0), then with one key changed in a
copy of it: a wrong broker port, an expired certificate, a ``--to`` whose
domain does not exist, an ``smtp_port`` where nothing listens, an open
``relay_networks``. Each names exactly the check that failed and exits 1.
``config check`` fails on a missing certificate with one line naming the key.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import tomli_w

from postline.app.doctor.broker import broker_checks
from postline.app.settings import Settings, load_settings, topology_for
from postline.ingress.users import add_user
from postline.topology import declare
from tests.support.broker import BROKER_URL, delete_topology, make_settings, new_namespace
from tests.support.certs import make_cert
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.pki import TestCa
from tests.support.relay import RelayProcess, child_env, deep_merge, postline_argv
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.timeout(120)
TOKEN = "doctor-token-0123456789abcdef0123456789"
RCPT = "someone@example.test"


@dataclass
class Setup:
    relay: RelayProcess
    sink: SmtpSink
    workdir: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("doctor")
    sink_cert, sink_key = make_cert(workdir / "sink", "mx.example.test", days=90)
    cert, key = make_cert(workdir / "ingress", "relay.test", days=90)
    users = workdir / "users.toml"
    add_user(users, "alice", "secret password", ["alice@relay.test"])
    tokens = workdir / "tokens"
    tokens.write_text(f"doctor:{TOKEN}\n")
    tokens.chmod(0o600)
    with DnsServer() as dns, SmtpSink(tls_cert=sink_cert, tls_key=sink_key) as sink:
        dns.add_mx("example.test", 10, "mx.example.test")
        dns.add_a("mx.example.test", "127.0.0.1")
        sections: dict[str, Any] = {
            "broker": {"namespace": new_namespace()},
            "ingress": {
                "tls_cert": str(cert),
                "tls_key": str(key),
                "users_file": str(users),
                "relay_networks": ["127.0.0.0/8", "10.0.0.0/8"],
            },
            "delivery": {
                "dns_nameservers": [dns.address],
                "smtp_port": sink.port,
                "deny_private_destinations": False,
                "tls_ca_file": str(sink_cert),
            },
            "audit": {"api_tokens_file": str(tokens)},
        }
        relay = RelayProcess(workdir, sections)
        relay.start()
        try:
            yield Setup(relay, sink, workdir)
        finally:
            relay.stop()
            topology = topology_for(load_settings(relay.config_path))
            asyncio.run(delete_topology(topology))


def doctor(setup: Setup, *args: str, **changes: dict[str, Any]) -> tuple[int, list[dict[str, str]]]:
    """Run ``postline doctor --json`` with the relay's config, ``changes`` merged in."""
    config = setup.relay.config_path
    if changes:
        config = setup.workdir / "changed.toml"
        config.write_text(tomli_w.dumps(deep_merge(setup.relay.config, changes)))
    done = subprocess.run(
        postline_argv(config, "doctor", "--json", *args),
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def failing(checks: list[dict[str, str]]) -> set[str]:
    return {check["check"] for check in checks if check["status"] == "FAIL"}


def test_a_working_setup_passes_every_check_and_sends_no_mail(setup: Setup) -> None:
    code, checks = doctor(setup, "--to", RCPT)
    assert [c for c in checks if c["status"] != "PASS"] == []
    assert code == 0
    names = {check["check"] for check in checks}
    smtp = f"smtp mx.example.test[127.0.0.1]:{setup.sink.port}"
    for expected in (
        "config",
        "file ingress.tls_cert",
        "file ingress.users_file",
        "file audit.api_tokens_file",
        "certificate expiry",
        "certificate hostname",
        "relay networks",
        "users file",
        "broker topology",
        "broker permissions",
        "mx example.test",
        f"{smtp} STARTTLS",
        f"{smtp} MAIL FROM:<>",
        f"{smtp} RCPT TO",
        "audit api",
        "readyz ingress",
        "readyz delivery",
    ):
        assert expected in names, expected
    starttls = next(c for c in checks if c["check"] == f"{smtp} STARTTLS")
    assert "certificate verified for mx.example.test" in starttls["found"]
    assert (RCPT, 250) in setup.sink.attempts
    assert setup.sink.messages == []  # never DATA


def test_a_wrong_broker_port_fails_the_broker_check(setup: Setup) -> None:
    port = free_port()
    code, checks = doctor(setup, broker={"url": f"amqp://guest:guest@127.0.0.1:{port}/"})
    assert code == 1
    assert failing(checks) == {f"broker 127.0.0.1:{port}"}


def test_an_expired_certificate_fails_the_expiry_check(setup: Setup) -> None:
    expired = TestCa(setup.workdir / "ca").issue("relay.test", expired=True)
    ingress = {"tls_cert": str(expired.chain_file), "tls_key": str(expired.key_file)}
    code, checks = doctor(setup, ingress=ingress)
    assert code == 1
    assert failing(checks) == {"certificate expiry"}
    line = next(c for c in checks if c["check"] == "certificate expiry")
    assert line["found"].startswith("expired on ")


def test_a_domain_that_does_not_exist_fails_the_mx_check(setup: Setup) -> None:
    code, checks = doctor(setup, "--to", "someone@nowhere.test")
    assert code == 1
    assert failing(checks) == {"mx nowhere.test"}
    line = next(c for c in checks if c["check"] == "mx nowhere.test")
    assert "NXDOMAIN" in line["found"]


def test_a_closed_smtp_port_fails_the_connect_check(setup: Setup) -> None:
    port = free_port()
    code, checks = doctor(setup, "--to", RCPT, delivery={"smtp_port": port})
    assert code == 1
    assert failing(checks) == {f"smtp mx.example.test[127.0.0.1]:{port} connect"}


def test_an_open_relay_network_fails_the_relay_check(setup: Setup) -> None:
    code, checks = doctor(setup, ingress={"relay_networks": ["10.0.0.0/8", "0.0.0.0/0"]})
    assert code == 1
    assert failing(checks) == {"relay networks"}
    line = next(c for c in checks if c["check"] == "relay networks")
    assert "0.0.0.0/0" in line["found"]


def test_text_output_is_one_line_per_check(setup: Setup) -> None:
    done = subprocess.run(
        postline_argv(setup.relay.config_path, "doctor", "--to", RCPT),
        capture_output=True,
        env=child_env(),
        timeout=60,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    print(done.stdout)
    assert lines and all(line.startswith("PASS  ") for line in lines)
    assert any(line.startswith("PASS  broker topology: ") for line in lines)


def test_config_check_names_a_missing_certificate_and_its_key(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pem"
    _, key = make_cert(tmp_path, "relay.test")
    config = tmp_path / "postline.toml"
    config.write_text(tomli_w.dumps({"ingress": {"tls_cert": str(missing), "tls_key": str(key)}}))
    done = subprocess.run(
        postline_argv(config, "config", "check"),
        capture_output=True,
        env=child_env(),
        timeout=60,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"postline: ingress.tls_cert: file {missing} does not exist\n"


async def broker_lines(settings: Settings) -> dict[str, tuple[str, str]]:
    return {c.check: (c.status.value, c.found) for c in await broker_checks(settings)}


async def test_a_missing_topology_fails_and_is_not_created(
    broker_settings: Callable[..., Settings],
) -> None:
    settings = broker_settings()
    lines = await broker_lines(settings)
    status, found = lines["broker topology"]
    assert status == "FAIL" and f"queue {settings.broker.namespace}.deliver" in found
    assert lines["broker permissions"][0] == "WARN"
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(f"{settings.broker.namespace}.deliver", passive=True)


async def test_a_queue_with_other_arguments_fails_the_topology_check(
    broker_settings: Callable[..., Settings],
) -> None:
    settings = broker_settings()
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        await declare(connection, topology_for(settings))
    changed = broker_settings(broker={"delivery_limit": 7})
    status, found = (await broker_lines(changed))["broker topology"]
    assert status == "FAIL"
    assert f"queue {settings.broker.namespace}.submit differs" in found
    assert "x-delivery-limit" in found


async def test_a_declared_topology_passes_and_the_probe_leaves_no_queue(
    broker_settings: Callable[..., Settings],
) -> None:
    settings = broker_settings()
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        await declare(connection, topology_for(settings))
        lines = await broker_lines(settings)
        assert lines["broker topology"][0] == "PASS"
        assert lines["broker permissions"][0] == "PASS"
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{settings.broker.namespace}.deliver", passive=True)
        assert queue.declaration_result.message_count == 0


async def test_refused_credentials_are_named(namespace: str) -> None:
    url = "amqp://guest:wrong@127.0.0.1:5672/"
    settings = make_settings(namespace, broker={"url": url})  # nothing declared, nothing to delete
    [(name, (status, found))] = (await broker_lines(settings)).items()
    assert name == "broker 127.0.0.1:5672" and status == "FAIL"
    assert "credentials refused" in found
