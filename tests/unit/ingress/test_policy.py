"""Relay decisions and CIDR edges: default deny, IPv4-mapped IPv6, prefix boundaries."""

from __future__ import annotations

import ipaddress

import pytest

from postline.ingress import replies
from postline.ingress.address import Mailbox
from postline.ingress.policy import (
    client_address,
    in_networks,
    limit_key,
    relay_reply,
    sender_reply,
)
from postline.ingress.users import User
from postline.values import parse_network

NETWORKS = [parse_network(n) for n in ("10.0.0.0/8", "192.0.2.128/25", "2001:db8::/32", "::1/128")]


@pytest.mark.parametrize(
    ("peer", "inside"),
    [
        ("10.0.0.1", True),
        ("10.255.255.255", True),
        ("11.0.0.0", False),
        ("9.255.255.255", False),
        ("192.0.2.128", True),
        ("192.0.2.127", False),
        ("192.0.2.255", True),
        ("::ffff:10.1.2.3", True),
        ("::ffff:192.0.2.127", False),
        ("::1", True),
        ("127.0.0.1", False),
        ("2001:db8:ffff::1", True),
        ("2001:db9::1", False),
        ("fe80::1%eth0", False),
        ("not-an-address", False),
        (None, False),
    ],
)
def test_client_inside_relay_networks(peer: str | None, inside: bool) -> None:
    assert in_networks(client_address(peer), NETWORKS) is inside


def test_empty_relay_networks_trust_nobody() -> None:
    assert not in_networks(client_address("127.0.0.1"), [])


def test_mapped_network_matches_plain_ipv4_client() -> None:
    mapped = [parse_network("::ffff:192.0.2.0/120")]
    assert in_networks(client_address("192.0.2.7"), mapped)
    assert in_networks(client_address("::ffff:192.0.2.7"), mapped)
    assert not in_networks(client_address("192.0.3.7"), mapped)


def test_ipv4_mapped_peer_is_unwrapped() -> None:
    assert client_address("::ffff:192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")


def test_relay_needs_auth_or_trusted_network() -> None:
    assert relay_reply(authenticated=False, trusted_client=False) == replies.RELAY_DENIED
    assert relay_reply(authenticated=True, trusted_client=False) is None
    assert relay_reply(authenticated=False, trusted_client=True) is None


def test_sender_ownership() -> None:
    user = User("alice", "$argon2id$x", frozenset({"alice@example.org", "@alice.test"}))
    assert sender_reply(user, Mailbox("Alice", "example.org")) is None
    assert sender_reply(user, Mailbox("anyone", "alice.test")) is None
    assert sender_reply(user, Mailbox("bob", "example.org")) == replies.SENDER_NOT_OWNED
    assert sender_reply(user, Mailbox("x", "sub.alice.test")) == replies.SENDER_NOT_OWNED
    assert sender_reply(user, None) == replies.SENDER_NOT_OWNED
    assert sender_reply(None, Mailbox("alice", "example.org")) == replies.SENDER_NOT_OWNED


def test_limit_key_groups_ipv6_by_64() -> None:
    assert limit_key(client_address("2001:db8:1:2:3::4")) == "2001:db8:1:2::/64"
    assert limit_key(client_address("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert limit_key(client_address("::ffff:192.0.2.1")) == "192.0.2.1"
    assert limit_key(None) == "unknown"
