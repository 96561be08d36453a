"""Every way a client can leave releases its session, its counters and its socket.

These run ingress as a real process (``postline ingress``) and watch what an
operator would: ``postline_ingress_active_sessions``, the process's open file
descriptors, ``/readyz``, and whether the next client still gets its ``220``.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import cleanup
from tests.support.broker import new_namespace
from tests.support.certs import client_tls, make_cert
from tests.support.relay import RelayProcess, eventually

pytestmark = pytest.mark.integration
SESSIONS = "postline_ingress_active_sessions"


@pytest.fixture
def ingress_process(tmp_path: Path) -> Iterator[Any]:
    """``start(**ingress_keys)`` -> a running ``postline ingress`` process."""
    started: list[RelayProcess] = []

    def start(**ingress: Any) -> RelayProcess:
        cert, key = make_cert(tmp_path / "tls")
        keys = {"relay_networks": ["127.0.0.0/8"], "tls_cert": str(cert), "tls_key": str(key)}
        keys.update(ingress)
        workdir = tmp_path / f"ingress{len(started)}"
        workdir.mkdir()
        sections = {"broker": {"namespace": new_namespace()}, "ingress": keys}
        process = RelayProcess(workdir, sections, command="ingress")
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        assert process.stop() == 0, process.logs()[-3000:]
        cleanup(process)


def open_fds(process: RelayProcess) -> int:
    assert process.process is not None
    return len(os.listdir(f"/proc/{process.process.pid}/fd"))


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.settimeout(10)
    return sock


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.splitlines()[-1][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def released(process: RelayProcess, fds: int) -> None:
    """Wait until no session is counted and the descriptors are back to ``fds``."""
    eventually(lambda: process.metric_value(SESSIONS) == 0, 15, "the session gauge to reach 0")
    eventually(lambda: open_fds(process) <= fds, 15, f"open descriptors to fall back to {fds}")


def greeted(port: int, source: str = "127.0.0.1") -> bytes:
    with connect(port, source) as sock:
        return read_reply(sock)


def test_clients_that_hang_up_without_quit_release_everything(ingress_process: Any) -> None:
    relay = ingress_process(max_sessions_per_ip=5)
    port = relay.smtp_port
    baseline = open_fds(relay)
    for _ in range(200):  # a load balancer's TCP health checks
        with connect(port) as sock:
            assert read_reply(sock).startswith(b"220 ")
    for _ in range(50):  # gone before the greeting
        connect(port).close()
    for _ in range(50):  # half-open: the client shuts its side and waits
        sock = connect(port)
        read_reply(sock)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b"", "a half-closed session is closed by the server"
        sock.close()
    for _ in range(20):  # vanished in the middle of DATA
        with connect(port) as sock:
            read_reply(sock)
            sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
            sock.sendall(b"Subject: half\r\n\r\nhalf a message")
    released(relay, baseline)
    assert greeted(port).startswith(b"220 "), "the address is not locked out"


def test_the_idle_timeout_ends_silent_and_trickling_clients(ingress_process: Any) -> None:
    relay = ingress_process(idle_timeout="1s", command_timeout="2s")
    trickling = connect(relay.smtp_port)
    read_reply(trickling)
    started = time.monotonic()
    with pytest.raises((AssertionError, OSError)):  # the server ends it while it trickles
        for char in b"EHLO slow.client.test":
            trickling.sendall(bytes([char]))
            time.sleep(0.3)  # the client's pace, not a wait for the server
            assert time.monotonic() - started < 6, "the command deadline did not end it"
    assert read_reply(trickling).startswith(b"421 4.4.2")
    assert 1.9 < time.monotonic() - started < 6
    silent = connect(relay.smtp_port)
    read_reply(silent)
    started = time.monotonic()
    assert read_reply(silent).startswith(b"421 4.4.2")
    assert 0.9 < time.monotonic() - started < 4
    silent.close()
    trickling.close()
    eventually(lambda: relay.metric_value(SESSIONS) == 0, 10, "the session gauge to reach 0")


def test_readyz_is_false_while_ingress_cannot_take_another_session(ingress_process: Any) -> None:
    relay = ingress_process(max_sessions=3)
    held = [connect(relay.smtp_port) for _ in range(3)]
    for sock in held:
        read_reply(sock)
    eventually(lambda: relay.http_status("ingress", "/readyz") == 503, 10, "/readyz 503")
    assert greeted(relay.smtp_port).startswith(b"421 4.7.0")
    for sock in held:
        sock.close()
    eventually(lambda: relay.http_status("ingress", "/readyz") == 200, 10, "/readyz 200")


def implicit_port(relay: RelayProcess) -> int:
    return int(relay.config["ingress"]["listen_tls"][0].rsplit(":", 1)[1])


def with_tls_listener(ingress_process: Any, **keys: Any) -> RelayProcess:
    from tests.support.net import free_port

    return ingress_process(listen_tls=[f"127.0.0.1:{free_port()}"], **keys)  # type: ignore[no-any-return]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_failed_tls_handshakes_release_their_sessions(ingress_process: Any) -> None:
    relay = with_tls_listener(ingress_process, tls_handshake_timeout="1s", max_sessions=400)
    tls_port = implicit_port(relay)
    baseline = open_fds(relay)
    for _ in range(300):  # plaintext to the implicit-TLS port (a port scanner, a confused client)
        with connect(tls_port) as sock:
            sock.sendall(b"EHLO plain.test\r\n")
            with_end(sock)
    for _ in range(30):  # STARTTLS followed by garbage
        with connect(relay.smtp_port) as sock:
            read_reply(sock)
            sock.sendall(b"EHLO c.test\r\n")
            read_reply(sock)
            sock.sendall(b"STARTTLS\r\n")
            assert read_reply(sock).startswith(b"220 ")
            sock.sendall(b"\x16\x03\x01garbage that is not a ClientHello" * 3)
            with_end(sock)
    old = client_tls()
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    for _ in range(10):  # TLS 1.1 clients are refused
        with connect(tls_port) as raw, pytest.raises((ssl.SSLError, OSError)):
            old.wrap_socket(raw).do_handshake()
    stalled = [connect(tls_port) for _ in range(20)]  # no ClientHello at all
    for sock in stalled:
        with_end(sock)  # the handshake timeout closes it
        sock.close()
    released(relay, baseline)
    assert relay.metric_value("postline_ingress_tls_handshakes_total", {"result": "failed"}) >= 330


def with_end(sock: socket.socket) -> None:
    """Read until the server closes; fail if it does not within the socket's timeout."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError("the server kept the connection open") from None


def test_one_address_stalling_handshakes_cannot_lock_out_another(ingress_process: Any) -> None:
    relay = with_tls_listener(
        ingress_process, max_sessions_per_ip=5, max_sessions=50, tls_handshake_timeout="30s"
    )
    tls_port = implicit_port(relay)
    hogs = [connect(tls_port, source="127.0.0.7") for _ in range(30)]
    eventually(
        lambda: (
            relay.metric_value(
                "postline_ingress_connections_refused_total", {"reason": "max_sessions_per_ip"}
            )
            >= 25
        ),
        10,
        "the per-address limit to refuse the extra handshakes",
    )
    with connect(tls_port, source="127.0.0.8") as raw:
        tls = client_tls().wrap_socket(raw)
        assert read_reply(tls).startswith(b"220 ")
        tls.sendall(b"EHLO other.test\r\nMAIL FROM:<a@other.test>\r\nRCPT TO:<b@x.test>\r\n")
        tls.sendall(b"DATA\r\n")
        replies = b""
        while b"354 " not in replies and b"\r\n5" not in replies:
            replies += tls.recv(4096)
        assert b"354 " in replies, replies
        tls.sendall(b"Subject: hi\r\n\r\nhi\r\n.\r\n")
        assert read_reply(tls).startswith(b"250 2.0.0")
        tls.close()
    for sock in hogs:
        sock.close()
    eventually(lambda: relay.metric_value(SESSIONS) == 0, 15, "the session gauge to reach 0")


def peak_rss_kib(process: RelayProcess) -> int:
    assert process.process is not None
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_message_of_short_lines_takes_about_its_size_in_memory(ingress_process: Any) -> None:
    size = 16 * 1024 * 1024
    relay = ingress_process(max_message_size="32MiB", data_timeout="120s")
    before = peak_rss_kib(relay)
    with connect(relay.smtp_port) as sock:
        read_reply(sock)
        sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
        replies = b""
        while b"354 " not in replies:
            replies += sock.recv(4096)
        sock.sendall(b"Subject: empty lines\r\n" + b"\r\n" * (size // 2) + b".\r\n")
        sock.settimeout(120)
        assert read_reply(sock).startswith(b"250 2.0.0")
    grown_mib = (peak_rss_kib(relay) - before) / 1024
    # reading and checking holds about two copies, the AMQP publish briefly two more
    assert grown_mib < 5 * size / 2**20, f"ingress grew {grown_mib:.0f} MiB for a 16 MiB message"
