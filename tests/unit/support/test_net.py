"""free_port gives a port that can really be bound, on one host or on several at once."""

from __future__ import annotations

import socket

import pytest

from tests.support.net import free_port


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
