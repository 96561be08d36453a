"""Relay policy lines of ``postline doctor``: who may relay without AUTH, and AUTH over TLS."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from postline.app.doctor.policy import auth_check, is_public, network_check, networks_checks
from postline.app.doctor.report import Status
from postline.ingress.settings import IngressSettings


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0"])
def test_everyone_may_relay_is_a_failure(everyone: str) -> None:
    check = network_check(net(everyone))
    assert check is not None and check.status is Status.FAIL
    assert "every address" in check.found


@pytest.mark.parametrize("public", ["8.8.8.0/24", "2001:4860::/32", "::ffff:0:0/96", "1.0.0.0/8"])
def test_a_public_range_is_a_failure(public: str) -> None:
    check = network_check(net(public))
    assert check is not None and check.status is Status.FAIL
    assert check.advice


def test_one_public_address_is_a_warning() -> None:
    check = network_check(net("8.8.8.8/32"))
    assert check is not None and check.status is Status.WARN


@pytest.mark.parametrize(
    "private",
    [
        "10.0.0.0/8",
        "192.168.0.0/16",
        "172.16.0.0/12",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "::1/128",
        "fe80::/10",
        "::ffff:10.0.0.0/104",
    ],
)
def test_private_networks_pass(private: str) -> None:
    assert not is_public(net(private))
    assert network_check(net(private)) is None


def test_a_range_that_reaches_past_private_space_is_public() -> None:
    assert is_public(net("10.0.0.0/7"))  # 10/8 and 11/8


def test_the_pass_line_lists_the_networks_and_each_bad_one_gets_its_line() -> None:
    [ok] = networks_checks([net("10.0.0.0/8")])
    assert ok.status is Status.PASS and "10.0.0.0/8" in ok.found
    bad = networks_checks([net("10.0.0.0/8"), net("0.0.0.0/0"), net("8.8.8.0/24")])
    assert [check.status for check in bad] == [Status.FAIL, Status.FAIL]


def test_auth_is_only_offered_over_tls(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    with_tls = IngressSettings(tls_cert=cert, tls_key=cert, users_file=cert)
    assert auth_check(with_tls).status is Status.PASS


def test_users_without_a_certificate_can_never_log_in(tmp_path: Path) -> None:
    check = auth_check(IngressSettings(users_file=tmp_path / "users.toml"))
    assert check.status is Status.WARN
    assert "never offered" in check.found
