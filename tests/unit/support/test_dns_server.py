"""The test DNS server answers as scripted, over UDP and TCP, to dnspython's resolver."""

from __future__ import annotations

from collections.abc import Iterator

import dns.exception
import dns.resolver
import pytest

from tests.support.dns_server import DnsServer


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer() as dns_server:
        yield dns_server


def resolver_for(server: DnsServer, timeout: float = 2.0) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = timeout
    resolver.timeout = timeout
    resolver.cache = None
    return resolver


def test_mx_records_are_answered_with_their_preferences(server: DnsServer) -> None:
    server.add_mx("Example.TEST.", 20, "mx2.example.test")
    server.add_mx("example.test", 10, "mx1.example.test.")
    answer = resolver_for(server).resolve("example.test", "MX")
    got = sorted((r.preference, r.exchange.to_text()) for r in answer)
    assert got == [(10, "mx1.example.test."), (20, "mx2.example.test.")]
    assert server.queries == [("example.test", "MX")]


def test_a_and_aaaa_records_are_answered(server: DnsServer) -> None:
    server.add_a("mx.example.test", "127.0.0.7")
    server.add_aaaa("mx.example.test", "::1")
    resolver = resolver_for(server)
    assert [r.address for r in resolver.resolve("mx.example.test", "A")] == ["127.0.0.7"]
    assert [r.address for r in resolver.resolve("MX.example.test", "AAAA")] == ["::1"]


def test_tcp_queries_are_answered(server: DnsServer) -> None:
    server.add_a("tcp.example.test", "127.0.0.9")
    answer = resolver_for(server).resolve("tcp.example.test", "A", tcp=True)
    assert [r.address for r in answer] == ["127.0.0.9"]


def test_unknown_name_is_nxdomain(server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(server).resolve("nowhere.test", "MX")


def test_explicit_nxdomain_wins_over_records(server: DnsServer) -> None:
    server.add_a("gone.test", "127.0.0.1")
    server.nxdomain("gone.test")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(server).resolve("gone.test", "A")


def test_known_name_without_the_type_is_nodata(server: DnsServer) -> None:
    server.add_a("only-a.test", "127.0.0.1")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver_for(server).resolve("only-a.test", "MX")


def test_null_mx_is_preference_zero_and_root(server: DnsServer) -> None:
    server.null_mx("nomail.test")
    answer = resolver_for(server).resolve("nomail.test", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in answer] == [(0, ".")]


def test_servfail_is_answered_as_servfail(server: DnsServer) -> None:
    server.servfail("broken.test")
    with pytest.raises(dns.resolver.NoNameservers) as caught:
        resolver_for(server).resolve("broken.test", "MX")
    assert "SERVFAIL" in str(caught.value)


def test_timeout_names_get_no_answer(server: DnsServer) -> None:
    server.timeout("tarpit.test")
    with pytest.raises(dns.exception.Timeout):
        resolver_for(server, timeout=0.3).resolve("tarpit.test", "MX")
    assert ("tarpit.test", "MX") in server.queries


def test_cname_is_followed_inside_the_zone(server: DnsServer) -> None:
    server.add_cname("alias.test", "real.test")
    server.add_a("real.test", "127.0.0.3")
    answer = resolver_for(server).resolve("alias.test", "A")
    assert answer.canonical_name.to_text() == "real.test."
    assert [r.address for r in answer] == ["127.0.0.3"]


def test_records_added_while_running_are_served(server: DnsServer) -> None:
    resolver = resolver_for(server)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("late.test", "A")
    server.add_a("late.test", "127.0.0.4")
    assert [r.address for r in resolver.resolve("late.test", "A")] == ["127.0.0.4"]


def test_address_is_host_colon_port(server: DnsServer) -> None:
    assert server.address == f"127.0.0.1:{server.port}"
    assert server.port > 0


def test_clear_forgets_records_and_marks(server: DnsServer) -> None:
    server.add_a("flip.test", "127.0.0.1")
    server.servfail("flip.test")
    server.clear("flip.test")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(server).resolve("flip.test", "A")
