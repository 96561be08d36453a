"""Next hop choice (routes > smarthost > MX) and the destination guard."""

from __future__ import annotations

import pytest

from postline.delivery.route import DestinationGuard, Route, domain_of, route_for
from postline.delivery.settings import DeliverySettings


def test_mx_route_by_default() -> None:
    route = route_for("x.test", DeliverySettings(smtp_port=2525))
    assert route == Route("x.test", "x.test", 2525, lookup_mx=True, operator_chosen=False)


def test_route_beats_smarthost_and_brackets_mean_no_mx_lookup() -> None:
    settings = DeliverySettings(
        routes={"X.Test": "[hub.example]:587"}, smarthost="[relay.example]:25"
    )
    route = route_for("x.test", settings)
    assert (route.host, route.port, route.lookup_mx, route.operator_chosen) == (
        "hub.example",
        587,
        False,
        True,
    )
    assert not route.smarthost
    other = route_for("y.test", settings)
    assert (other.host, other.smarthost, other.nexthop) == (
        "relay.example",
        True,
        "[relay.example]:25",
    )


def test_hop_without_brackets_looks_up_the_hops_mx() -> None:
    route = route_for("x.test", DeliverySettings(smarthost="relay.example:2525"))
    assert (route.host, route.port, route.lookup_mx) == ("relay.example", 2525, True)


@pytest.mark.parametrize(
    ("domain", "host"), [("[192.0.2.7]", "192.0.2.7"), ("[ipv6:2001:db8::1]", "2001:db8::1")]
)
def test_address_literal_goes_straight_to_the_address(domain: str, host: str) -> None:
    route = route_for(domain, DeliverySettings())
    assert (route.host, route.lookup_mx, route.operator_chosen) == (host, False, False)


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("a@X.Test.", "x.test"),
        ('"odd@local"@x.test', "x.test"),
        ("no-domain", None),
        ("@x.test", None),
        ("a@", None),
        ("a@x.test\r\nRCPT TO:<b@y>", None),
    ],
)
def test_domain_of(address: str, domain: str | None) -> None:
    assert domain_of(address) == domain


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "non-global"),
    ],
)
def test_guard_refuses_inside_addresses(address: str, kind: str) -> None:
    reason = DestinationGuard(True).refusal(address)
    assert reason is not None and reason.endswith(f"is a {kind} address")


def test_guard_refuses_the_broker_and_allows_public_addresses() -> None:
    guard = DestinationGuard(True, {"203.0.113.9"})
    assert guard.refusal("203.0.113.9") == "203.0.113.9 is the message broker"
    assert guard.refusal("8.8.8.8") is None
    assert guard.refusal("2a00:1450:4001:80b::200e") is None


def test_guard_disabled_allows_everything() -> None:
    assert DestinationGuard(False, {"127.0.0.1"}).refusal("127.0.0.1") is None


async def test_every_broker_node_of_a_cluster_url_list_is_a_refused_destination() -> None:
    from postline.delivery.route import broker_addresses

    urls = ("amqp://u:p@127.0.0.7:5672/", "amqp://u:p@127.0.0.8:5673/", "amqp://u:p@[::1]/")
    guard = DestinationGuard(True, await broker_addresses(urls))
    for address in ("127.0.0.7", "127.0.0.8", "::1"):
        assert guard.refusal(address) == f"{address} is the message broker"
