"""Ingress exports when its certificate expires, and follows a renewal."""

from __future__ import annotations

import os
import time
from pathlib import Path

from postline.ingress import metrics
from postline.ingress.tls import TlsContext, expiry
from tests.support.certs import make_cert

DAY = 86400


def exported() -> float:
    return float(metrics.TLS_CERTIFICATE_EXPIRY._value.get())


async def test_the_served_certificates_expiry_is_exported_and_follows_a_renewal(
    tmp_path: Path,
) -> None:
    cert, key = make_cert(tmp_path, days=2)
    tls = TlsContext(cert, key, interval=3600)
    assert abs(exported() - (time.time() + 2 * DAY)) < 120
    renewed_cert, renewed_key = make_cert(tmp_path / "renewed", days=30)
    os.replace(renewed_cert, cert)
    os.replace(renewed_key, key)
    assert await tls.reload_if_changed()
    assert abs(exported() - (time.time() + 30 * DAY)) < 120


def test_an_unreadable_certificate_has_no_expiry(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert expiry(broken) is None
