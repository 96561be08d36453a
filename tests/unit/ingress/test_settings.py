"""The [ingress] section: new keys parse, and bad combinations name themselves."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from postline.ingress.settings import IngressSettings
from postline.ingress.tls import build_context


def test_defaults_are_safe() -> None:
    settings = IngressSettings(hostname="mx.test")
    assert settings.relay_networks == [] and not settings.proxy_protocol
    assert settings.max_sessions >= settings.max_sessions_per_ip
    assert settings.auth_failure_delay > 0 and settings.drain_delay == 0


def test_durations_and_zero_delays() -> None:
    settings = IngressSettings(
        hostname="mx.test", drain_delay="0", auth_failure_delay="0s", idle_timeout="90s"
    )
    assert (settings.drain_delay, settings.auth_failure_delay, settings.idle_timeout) == (0, 0, 90)
    with pytest.raises(ValidationError, match="drain_delay"):
        IngressSettings(hostname="mx.test", drain_delay="-1s")
    with pytest.raises(ValidationError, match="max_sessions"):
        IngressSettings(hostname="mx.test", max_sessions=0)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"proxy_protocol": True}, "trusted_proxies"),
        ({"listen_tls": ["0.0.0.0:465"]}, "tls_cert"),
        ({"tls_cert": "cert.pem"}, "together"),
        ({"listen": []}, "at least one"),
    ],
)
def test_inconsistent_keys_are_refused(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IngressSettings(hostname="mx.test", **keys)


def test_server_context_refuses_anything_below_tls_1_2(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=mx.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = build_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert context.options & ssl.OP_NO_COMPRESSION
