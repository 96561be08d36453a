"""Source addresses: pools by sender domain or auth user, weights, address families."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from postline.delivery.settings import DeliverySettings
from postline.delivery.sources import NoSource, Source, Sources

SETTINGS = DeliverySettings.model_validate(
    {
        "source_addresses": [
            {"address": "192.0.2.10", "helo_name": "out1.example.org"},
            {"address": "192.0.2.11"},
            {"address": "2001:db8::10", "helo_name": "out6.example.org"},
        ],
        "pools": [
            {
                "name": "news",
                "sender_domains": ["News.Example.org"],
                "auth_users": ["mailer"],
                "addresses": {"192.0.2.11": 3, "2001:db8::10": 1},
            }
        ],
    }
)


def sources() -> Sources:
    return Sources(SETTINGS.source_addresses, SETTINGS.pools, random.Random(7))


def test_a_pool_serves_its_sender_domains_and_auth_users() -> None:
    chosen = sources()
    assert chosen.pick("a@news.example.org", None, "198.51.100.1") == Source(
        "192.0.2.11", None, "news"
    )
    assert chosen.pick("x@other.test", "mailer", "2001:db8::25") == Source(
        "2001:db8::10", "out6.example.org", "news"
    )


def test_other_senders_use_the_addresses_no_pool_names() -> None:
    picks = {sources().pick("x@other.test", None, "198.51.100.1") for _ in range(20)}
    assert picks == {Source("192.0.2.10", "out1.example.org", "default")}


def test_the_default_pool_has_no_ipv6_here_so_ipv6_destinations_are_skipped() -> None:
    with pytest.raises(NoSource):
        sources().pick("x@other.test", None, "2001:db8::25")


def test_weights_share_the_load() -> None:
    many = Sources(
        SETTINGS.source_addresses,
        [SETTINGS.pools[0].model_copy(update={"addresses": {"192.0.2.10": 3, "192.0.2.11": 1}})],
        random.Random(1),
    )
    counts: Counter[str] = Counter()
    for _ in range(400):
        source = many.pick("a@news.example.org", None, "198.51.100.1")
        assert source is not None
        counts[source.address] += 1
    assert 250 < counts["192.0.2.10"] < 350


def test_no_source_addresses_lets_the_system_choose() -> None:
    assert Sources([], []).pick("a@x.test", None, "198.51.100.1") is None


def test_a_pool_may_name_only_configured_addresses() -> None:
    with pytest.raises(ValidationError, match="not in source_addresses"):
        DeliverySettings.model_validate({"pools": [{"name": "p", "addresses": {"192.0.2.99": 1}}]})
