"""RFC 5321 path parsing: the forms relay testers use are parsed, not split on '@'."""

from __future__ import annotations

import pytest

from postline.ingress.address import AddressError, Mailbox, parse_domain, parse_path


def mailbox(text: str, **kw: bool) -> Mailbox:
    path = parse_path(text, allow_null=False, **kw)
    assert path.mailbox is not None
    return path.mailbox


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("<alice@example.org>", "alice", "example.org"),
        ("<Alice.Smith+tag@Example.ORG>", "Alice.Smith+tag", "example.org"),
        ("alice@example.org", "alice", "example.org"),
        (" <alice@example.org>", "alice", "example.org"),
        ('<"alice"@example.org>', "alice", "example.org"),
        ('<"user@evil.test"@example.org>', '"user@evil.test"', "example.org"),
        ('<"a b\\"c"@example.org>', '"a b\\"c"', "example.org"),
        ("<user%evil.test@example.org>", "user%evil.test", "example.org"),
        ("<evil.test!user@example.org>", "evil.test!user", "example.org"),
        ("<user@[192.0.2.1]>", "user", "[192.0.2.1]"),
        ("<user@[IPv6:2001:DB8::1]>", "user", "[IPv6:2001:db8::1]"),
        ("<@relay.test,@other.test:user@example.org>", "user", "example.org"),
    ],
)
def test_mailbox_forms_are_parsed_by_the_grammar(text: str, local: str, domain: str) -> None:
    parsed = mailbox(text)
    assert (parsed.local, parsed.domain) == (local, domain)


def test_source_route_is_reported_and_dropped() -> None:
    path = parse_path("<@evil.test:user@example.org>", allow_null=False)
    assert path.routed and str(path.mailbox) == "user@example.org"


@pytest.mark.parametrize(
    "text",
    [
        "<user@example.org.>",  # trailing dot
        "<user.@example.org>",
        "<.user@example.org>",
        "<us..er@example.org>",
        "<user@>",
        "<user>",
        "<@example.org>",
        "<user@@example.org>",
        "<user@exa mple.org>",
        "<user@-example.org>",
        "<user@example..org>",
        "<user@[300.1.1.1]>",
        "<user@[192.0.2.1>",
        "<user@[tag:whatever]>",
        "<user@evil.test@example.org>",
        '<"unterminated@example.org>',
        "<user@example.org",
        "<user@example.org>junk",
        "<@evil.test user@example.org>",
        "<a\x00b@example.org>",
        "<" + "a" * 65 + "@example.org>",
        "<user@" + "a" * 64 + ".org>",
        "<>",
        "",
    ],
)
def test_malformed_paths_are_syntax_errors(text: str) -> None:
    with pytest.raises(AddressError):
        parse_path(text, allow_null=False)


def test_null_reverse_path_only_where_allowed() -> None:
    assert parse_path("<>", allow_null=True).mailbox is None
    with pytest.raises(AddressError):
        parse_path("", allow_null=True)


def test_parameters_are_parsed_upper_cased_and_checked() -> None:
    path = parse_path("<a@example.org> size=100 BODY=8BITMIME SMTPUTF8", allow_null=True)
    assert path.params == {"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": None}
    for bad in ("<a@example.org> SIZE=", "<a@example.org> -X", "<a@example.org> A=1 a=2"):
        with pytest.raises(AddressError):
            parse_path(bad, allow_null=True)


def test_non_ascii_needs_smtputf8() -> None:
    assert mailbox("<jörg@bücher.example>").domain == "bücher.example"
    with pytest.raises(AddressError) as caught:
        parse_path("<jörg@example.org>", allow_null=False, smtputf8=False)
    assert caught.value.needs_smtputf8


def test_undecodable_bytes_are_rejected() -> None:
    text = b"<a\xff@example.org>".decode("utf-8", errors="surrogateescape")
    with pytest.raises(AddressError):
        parse_path(text, allow_null=False)


def test_domains_are_lower_cased() -> None:
    assert parse_domain("MX.Example.ORG") == "mx.example.org"


@pytest.mark.parametrize("domain", ["straße.test", "xn--strae-oqa.test", "bücher.example"])
def test_idna_2008_domains_are_accepted(domain: str) -> None:
    assert parse_domain(domain) == domain


@pytest.mark.parametrize(
    "domain",
    [
        "☃.test",  # a symbol: valid in IDNA 2003 (xn--n3h), not in IDNA 2008
        "xn--n3h.test",  # the same label spelled as an A-label
        "xn--zz.test",  # not a valid A-label at all
    ],
)
def test_domains_that_are_not_idna_2008_are_refused(domain: str) -> None:
    with pytest.raises(AddressError):
        parse_domain(domain)
