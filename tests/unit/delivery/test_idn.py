"""IDNA 2008 conversions: the same A-labels as dnspython, never IDNA 2003's."""

from __future__ import annotations

import pytest

from postline.delivery.idn import IdnaError, ascii_address, to_ascii, to_unicode
from postline.delivery.route import domain_of


@pytest.mark.parametrize(
    ("domain", "ace"),
    [
        ("straße.test", "xn--strae-oqa.test"),  # IDNA 2003 said strasse.test
        ("Bücher.DE.", "xn--bcher-kva.de"),
        ("xn--strae-oqa.test", "xn--strae-oqa.test"),
        ("Example.ORG", "example.org"),
        ("[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]"),
    ],
)
def test_to_ascii_gives_idna_2008_a_labels(domain: str, ace: str) -> None:
    assert to_ascii(domain) == ace


@pytest.mark.parametrize("domain", ["☃.test", "xn--zz.test"])
def test_to_ascii_refuses_what_idna_2008_refuses(domain: str) -> None:
    with pytest.raises(IdnaError):
        to_ascii(domain)


def test_to_unicode_is_the_way_back() -> None:
    assert to_unicode("xn--strae-oqa.test") == "straße.test"


def test_ascii_address_downgrades_the_domain_only() -> None:
    assert ascii_address("bob@straße.test") == "bob@xn--strae-oqa.test"
    assert ascii_address("jörg@straße.test") is None


def test_both_spellings_of_a_domain_are_one_destination() -> None:
    assert domain_of("bob@straße.test") == domain_of("bob@XN--STRAE-OQA.test")
    assert domain_of("bob@☃.test") is None
