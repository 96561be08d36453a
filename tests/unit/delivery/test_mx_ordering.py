"""MX hosts come in preference order, equal preferences shuffled; DNS answers map to outcomes."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from postline.delivery.mx import MxHost, Resolver, RouteError, order_mx
from postline.values import parse_host_port
from tests.support.dns_server import DnsServer


def test_lowest_preference_comes_first() -> None:
    hosts = [MxHost("c", 30), MxHost("a", 10), MxHost("b", 20)]
    assert [h.name for h in order_mx(hosts)] == ["a", "b", "c"]


def test_equal_preferences_are_shuffled_but_stay_behind_better_ones() -> None:
    hosts = [MxHost("best", 5), MxHost("x", 10), MxHost("y", 10), MxHost("z", 10)]
    orders = {tuple(h.name for h in order_mx(hosts, random.Random(seed))) for seed in range(40)}
    assert all(order[0] == "best" for order in orders)
    assert len({order[1:] for order in orders}) > 1, "equal preferences were never shuffled"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


async def resolver(dns: DnsServer, **kwargs: float) -> Resolver:
    options = {"timeout": 1.0, "cache_ttl": 60.0, "max_mx_hosts": 5} | kwargs
    made = Resolver(
        [parse_host_port(dns.address)],
        timeout=options["timeout"],
        cache_ttl=options["cache_ttl"],
        max_mx_hosts=int(options["max_mx_hosts"]),
    )
    await made.start()
    return made


async def test_mx_hosts_are_resolved_in_preference_order_and_capped(dns: DnsServer) -> None:
    for preference, name in [(30, "mx3"), (10, "mx1"), (20, "mx2")]:
        dns.add_mx("x.test", preference, f"{name}.x.test")
    hosts = await (await resolver(dns, max_mx_hosts=2)).mx_hosts("x.test")
    assert [(h.name, h.preference) for h in hosts] == [("mx1.x.test", 10), ("mx2.x.test", 20)]


async def test_no_mx_records_give_the_implicit_mx(dns: DnsServer) -> None:
    dns.add_a("x.test", "192.0.2.1")
    assert await (await resolver(dns)).mx_hosts("x.test") == [MxHost("x.test", 0)]


async def test_null_mx_is_permanent_5_1_10(dns: DnsServer) -> None:
    dns.null_mx("x.test")
    with pytest.raises(RouteError) as caught:
        await (await resolver(dns)).mx_hosts("x.test")
    assert (caught.value.reply.code, caught.value.reply.enhanced) == (556, "5.1.10")


async def test_nxdomain_is_permanent_5_1_2(dns: DnsServer) -> None:
    with pytest.raises(RouteError) as caught:
        await (await resolver(dns)).mx_hosts("gone.test")
    assert (caught.value.reply.code, caught.value.reply.enhanced) == (550, "5.1.2")


async def test_servfail_is_temporary_and_never_cached(dns: DnsServer) -> None:
    dns.servfail("x.test")
    made = await resolver(dns)
    with pytest.raises(RouteError) as caught:
        await made.mx_hosts("x.test")
    assert (caught.value.reply.code, caught.value.reply.enhanced) == (451, "4.4.3")
    dns.clear("x.test")
    dns.add_mx("x.test", 10, "mx.x.test")
    assert [h.name for h in await made.mx_hosts("x.test")] == ["mx.x.test"]


async def test_answers_and_nxdomain_are_cached(dns: DnsServer) -> None:
    dns.add_mx("x.test", 10, "mx.x.test")
    made = await resolver(dns)
    await made.mx_hosts("x.test")
    with pytest.raises(RouteError):
        await made.mx_hosts("gone.test")
    queries = len(dns.queries)
    await made.mx_hosts("X.test.")
    with pytest.raises(RouteError):
        await made.mx_hosts("gone.test")
    assert len(dns.queries) == queries


async def test_cache_can_be_disabled(dns: DnsServer) -> None:
    dns.add_mx("x.test", 10, "mx.x.test")
    made = await resolver(dns, cache_ttl=0)
    await made.mx_hosts("x.test")
    await made.mx_hosts("x.test")
    assert dns.queries.count(("x.test", "MX")) == 2


async def test_addresses_include_ipv6_first_and_follow_cnames(dns: DnsServer) -> None:
    dns.add_cname("mx.x.test", "real.x.test")
    dns.add_a("real.x.test", "192.0.2.1")
    dns.add_aaaa("real.x.test", "2001:db8::1")
    assert await (await resolver(dns)).addresses("mx.x.test") == ["2001:db8::1", "192.0.2.1"]


async def test_address_of_an_unknown_host_is_permanent(dns: DnsServer) -> None:
    with pytest.raises(RouteError) as caught:
        await (await resolver(dns)).addresses("nohost.x.test")
    assert caught.value.reply.is_permanent


async def test_ip_literal_needs_no_lookup(dns: DnsServer) -> None:
    assert await (await resolver(dns)).addresses("192.0.2.7") == ["192.0.2.7"]
    assert dns.queries == []
