"""free_port gives a port that can really be bound; http_status reports what a server says."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.support.net import free_port, http_status


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.bind((host, port))
    return sock


def test_default_host_is_ipv4_loopback() -> None:
    port = free_port()
    with bind("127.0.0.1", port):
        pass


def test_port_is_free_on_every_host_given() -> None:
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    port = free_port(*hosts)
    sockets = [bind(host, port) for host in hosts]
    for sock in sockets:
        sock.close()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        probe = bind("::1", 0)
    except OSError:
        pytest.skip("::1 not configured")
    probe.close()
    port = free_port("::1", "127.0.0.1")
    with bind("::1", port), bind("127.0.0.1", port):
        pass


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [200, 503, 404])
def test_http_status_reports_the_status_errors_included(http_port: int, status: int) -> None:
    assert http_status(f"http://127.0.0.1:{http_port}/{status}") == status


def test_http_status_is_none_when_nothing_listens() -> None:
    assert http_status(f"http://127.0.0.1:{free_port()}/readyz") is None
