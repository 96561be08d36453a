"""The ingress TLS certificate: it loads with its key, is not (about to be) expired,
and names ``[ingress] hostname``.

``expiry_check`` and ``matches_hostname`` are pure (the clock is a parameter):
expired is ``FAIL``, under ``WARN_DAYS`` days left is ``WARN``. A certificate
names a host through its subjectAltName DNS entries (RFC 6125: the common name
counts only when there are none); ``*.example.org`` covers exactly one label.
``certificate_checks(settings)`` runs them on ``tls_cert``/``tls_key`` and is
silent when no certificate is configured (the relay policy check says what that
means for AUTH); unreadable files are the files check's to report.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from postline.app.doctor.files import problem
from postline.app.doctor.report import Check, escape, failed, passed, warned
from postline.app.settings import Settings

WARN_DAYS = 21
EXPIRY = "certificate expiry"
HOSTNAME = "certificate hostname"
KEY = "certificate key"


def expiry_check(not_after: datetime, now: datetime, name: str = EXPIRY) -> Check:
    """``FAIL`` when ``not_after`` has passed, ``WARN`` under ``WARN_DAYS`` days, else ``PASS``."""
    left = not_after - now
    stamp = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if left.total_seconds() <= 0:
        return failed(name, f"expired on {stamp}", "renew the certificate now")
    days = left.days
    if days < WARN_DAYS:
        found = f"expires in {days} days ({stamp})"
        return warned(name, found, f"renew it within {days} days")
    return passed(name, f"valid until {stamp} ({days} days left)")


def host_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names a certificate is for: its SAN DNS entries, else its common names."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [
            str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return [str(name) for name in san.value.get_values_for_type(x509.DNSName)]


def matches_hostname(hostname: str, names: list[str]) -> bool:
    """True if one of ``names`` covers ``hostname`` (one-label wildcards, case-insensitive)."""
    wanted = hostname.lower().rstrip(".")
    for name in names:
        pattern = name.lower().rstrip(".")
        if pattern == wanted:
            return True
        wildcard = pattern.startswith("*.") and "." in wanted
        if wildcard and wanted.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def certificate_checks(settings: Settings, now: datetime | None = None) -> list[Check]:
    """Key pair, expiry and hostname of ``[ingress] tls_cert`` (module docstring)."""
    cert, key = settings.ingress.tls_cert, settings.ingress.tls_key
    if cert is None or key is None or problem(cert) or problem(key):
        return []
    try:
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    except (ValueError, IndexError) as error:
        found = f"{cert} is not a PEM certificate: {escape(error)}"
        return [failed(KEY, found, "put the PEM certificate chain (leaf first) in tls_cert")]
    checks = [_key_check(cert, key)]
    checks.append(expiry_check(leaf.not_valid_after_utc, now or datetime.now(UTC)))
    hostname = settings.ingress.hostname or settings.relay.hostname
    names = host_names(leaf)
    shown = ", ".join(escape(name, 80) for name in names[:5]) or "no DNS names"
    if matches_hostname(hostname, names):
        checks.append(passed(HOSTNAME, f"{hostname} is among {shown}"))
    else:
        advice = f"get a certificate for {hostname}, or set [ingress] hostname to a name it has"
        checks.append(failed(HOSTNAME, f"{hostname} is not among {shown}", advice))
    return checks


def _key_check(cert: Path, key: Path) -> Check:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        found = f"{cert} and {key} do not load together: {escape(error)}"
        return failed(KEY, found, "tls_key must be the private key of tls_cert's first certificate")
    return passed(KEY, f"{cert} loads with its key")
