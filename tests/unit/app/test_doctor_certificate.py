"""Certificate lines of ``postline doctor``: expiry thresholds and host names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from postline.app.doctor.certificate import (
    WARN_DAYS,
    certificate_checks,
    expiry_check,
    matches_hostname,
)
from postline.app.doctor.report import Status
from postline.app.settings import Settings
from tests.support.certs import make_cert

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_an_expired_certificate_fails() -> None:
    check = expiry_check(NOW - timedelta(seconds=1), NOW)
    assert check.status is Status.FAIL
    assert check.found == "expired on 2026-12-01 11:59 UTC"


def test_a_certificate_expiring_now_counts_as_expired() -> None:
    assert expiry_check(NOW, NOW).status is Status.FAIL


def test_under_three_weeks_left_warns() -> None:
    check = expiry_check(NOW + timedelta(days=WARN_DAYS - 1, hours=23), NOW)
    assert check.status is Status.WARN
    assert "expires in 20 days" in check.found


def test_three_weeks_left_passes() -> None:
    check = expiry_check(NOW + timedelta(days=WARN_DAYS), NOW)
    assert check.status is Status.PASS
    assert "21 days left" in check.found


def test_host_names_match_exactly_or_by_one_label_wildcard() -> None:
    assert matches_hostname("mail.example.org", ["mail.example.org"])
    assert matches_hostname("Mail.Example.ORG.", ["mail.example.org"])
    assert matches_hostname("mail.example.org", ["*.example.org"])
    assert not matches_hostname("a.mail.example.org", ["*.example.org"])
    assert not matches_hostname("example.org", ["*.example.org"])
    assert not matches_hostname("mail.example.org", ["mail.example.net", "example.org"])


def settings_with(cert: Path, key: Path, hostname: str) -> Settings:
    return Settings.model_validate(
        {"ingress": {"tls_cert": str(cert), "tls_key": str(key), "hostname": hostname}}
    )


def test_a_valid_certificate_for_the_hostname_passes(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "relay.test", days=90)
    checks = certificate_checks(settings_with(cert, key, "relay.test"))
    assert [(c.check, c.status) for c in checks] == [
        ("certificate key", Status.PASS),
        ("certificate expiry", Status.PASS),
        ("certificate hostname", Status.PASS),
    ]


def test_a_certificate_for_another_name_fails_the_hostname_check(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "other.test", days=90)
    checks = {c.check: c for c in certificate_checks(settings_with(cert, key, "relay.test"))}
    assert checks["certificate hostname"].status is Status.FAIL
    assert "other.test" in checks["certificate hostname"].found


def test_a_key_of_another_certificate_fails(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path / "a", "relay.test", days=90)
    _, key = make_cert(tmp_path / "b", "relay.test", days=90)
    checks = {c.check: c for c in certificate_checks(settings_with(cert, key, "relay.test"))}
    assert checks["certificate key"].status is Status.FAIL


def test_a_file_that_is_no_certificate_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    [check] = certificate_checks(settings_with(junk, junk, "relay.test"))
    assert check.status is Status.FAIL and "not a PEM certificate" in check.found
