"""Parsing the value forms of the configuration contract."""

from __future__ import annotations

import ipaddress

import pytest

from postline.values import (
    HostPort,
    NextHop,
    delay_for_attempt,
    format_duration,
    format_retry_schedule,
    parse_duration,
    parse_host_port,
    parse_network,
    parse_next_hop,
    parse_retry_schedule,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("5d", 432000),
        ("1w", 604800),
        ("90", 90),
        ("1.5s", 1.5),
        (" 10m ", 600),
        (45, 45),
    ],
)
def test_durations_parse_with_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-1s", "0s", "5 minutes", True, None])
def test_bad_durations_are_refused_with_a_hint(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_format_back_to_their_shortest_spelling() -> None:
    assert [format_duration(s) for s in (1, 60, 90, 300, 3600, 86400, 1.5)] == [
        "1s",
        "1m",
        "90s",
        "5m",
        "1h",
        "1d",
        "1.5s",
    ]


def test_retry_schedule_expands_repeats_in_order() -> None:
    schedule = parse_retry_schedule("1m,5m*2,30m*2,2h*8")
    assert schedule == (60, 300, 300, 1800, 1800, *([7200] * 8))


def test_retry_schedule_formats_back_to_its_short_spelling() -> None:
    text = "1m,5m*2,30m*2,2h*8"
    assert format_retry_schedule(parse_retry_schedule(text)) == text
    assert format_retry_schedule((1.0, 2.0, 1.0)) == "1s,2s,1s"


def test_retry_schedule_accepts_a_list_of_durations() -> None:
    assert parse_retry_schedule(["1s", "2s"]) == (1, 2)


@pytest.mark.parametrize("text", ["", "1m,", "5m*0", "5m*x", "5m**2", "abc"])
def test_bad_retry_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_retry_schedule(text)


def test_the_last_schedule_entry_repeats_for_later_attempts() -> None:
    schedule = parse_retry_schedule("1m,5m")
    assert [delay_for_attempt(schedule, n) for n in (1, 2, 3, 10)] == [60, 300, 300, 300]
    with pytest.raises(ValueError):
        delay_for_attempt(schedule, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:25", HostPort("127.0.0.1", 25)),
        ("[::1]:2525", HostPort("::1", 2525)),
        ("mx.example:587", HostPort("mx.example", 587)),
        ("0.0.0.0:0", HostPort("0.0.0.0", 0)),
    ],
)
def test_host_port_forms(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected


def test_host_port_default_port_applies_to_bare_hosts_only() -> None:
    assert parse_host_port("10.0.0.53", 53) == HostPort("10.0.0.53", 53)
    assert parse_host_port("::1", 53) == HostPort("::1", 53)
    assert parse_host_port("127.0.0.1:5353", 53) == HostPort("127.0.0.1", 5353)
    assert str(HostPort("::1", 53)) == "[::1]:53"


@pytest.mark.parametrize("text", ["", "host", "host:port", "h:70000", "[::1", ":25"])
def test_bad_host_ports_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


def test_next_hop_brackets_mean_no_mx_lookup() -> None:
    assert parse_next_hop("[relay.example]:587") == NextHop("relay.example", 587, False)
    assert parse_next_hop("relay.example") == NextHop("relay.example", 25, True)
    assert parse_next_hop("[127.0.0.1]") == NextHop("127.0.0.1", 25, False)
    assert str(parse_next_hop("[::1]:2525")) == "[::1]:2525"


def test_sizes_accept_units() -> None:
    assert parse_size("25MiB") == 25 * 1024 * 1024
    assert parse_size("10M") == 10 * 1024 * 1024
    assert parse_size(1000) == 1000
    for bad in ("10 parsecs", "-1", 0, "lots"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_networks_accept_ipv4_and_ipv6_with_host_bits() -> None:
    assert parse_network("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network("::1/128") == ipaddress.ip_network("::1/128")
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 network"):
        parse_network("10.0.0.0/33")
