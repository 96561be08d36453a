"""DANE for SMTP (RFC 7672): TLSA records, and checking a server's certificate chain against them.

``Tlsa.parse(text)`` reads one TLSA record (``3 1 1 <hex>``). Usable for SMTP
(RFC 7672 3.1) are DANE-TA (usage 2) and DANE-EE (usage 3), with selector 0
(the whole certificate) or 1 (its SubjectPublicKeyInfo) and matching type 0
(exact), 1 (SHA-256) or 2 (SHA-512); PKIX-TA/PKIX-EE (0, 1) and malformed
records are unusable. A host with TLSA records that are all unusable still
gets mandatory TLS, unauthenticated (RFC 7672 2.2).

``verify(records, chain, names, now)`` judges the chain the server presented
(leaf first, DER) and returns a ``Verdict``:

* DANE-EE ``3 x x``: the leaf certificate (or its key) matches; its names and
  dates are not checked (RFC 7672 3.1.1);
* DANE-TA ``2 x x``: a certificate of the chain after the leaf matches, and the
  leaf chains up to it with valid signatures and dates and a DNS name among
  ``names`` (the MX host name, then the recipient domain; 3.2.2). The chain is
  checked with ``cryptography``'s X.509 verifier, that certificate as the only
  trust anchor.

A failed verdict carries the RFC 8460 result type (``certificate-not-trusted``,
``certificate-host-mismatch``, ``certificate-expired``, ``tlsa-invalid``) and
a reason. ``peer_chain(ssl_object)`` returns the chain the server sent: Python
3.13 has ``SSLObject.get_unverified_chain()``; before that the same method
exists only on the private ``SSLObject._sslobj`` (CPython 3.10-3.12), used here
and pinned by ``tests/unit/delivery/test_dane.py``. No I/O.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import verification

from postline.delivery.replies import escaped

DANE_TA, DANE_EE = 2, 3
_DIGESTS = {1: "sha256", 2: "sha512"}


@dataclass(frozen=True)
class Tlsa:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Tlsa | None:
        """``"3 1 1 ab12..."`` as a record; None when it is not a TLSA record at all."""
        parts = text.split()
        if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
            return None
        try:
            data = bytes.fromhex("".join(parts[3:]))
        except ValueError:
            return None
        return cls(int(parts[0]), int(parts[1]), int(parts[2]), data)

    @property
    def usable(self) -> bool:
        """DANE-TA or DANE-EE with a known selector and matching type (RFC 7672 3.1)."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (0, 1):
            return False
        if self.mtype == 0:
            return bool(self.data)
        size = {1: 32, 2: 64}.get(self.mtype)
        return size is not None and len(self.data) == size

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.selector == 0:
            content = certificate.public_bytes(Encoding.DER)
        else:
            content = certificate.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        if self.mtype in _DIGESTS:
            content = hashlib.new(_DIGESTS[self.mtype], content).digest()
        return content == self.data

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()[:16]}..."


def tlsa_name(host: str, port: int) -> str:
    """``_25._tcp.mx.example.org``: where the TLSA records of ``host:port`` are."""
    return f"_{port}._tcp.{host}"


@dataclass(frozen=True)
class Verdict:
    """Whether the chain matched; if so by which usage, else the RFC 8460 result and why."""

    ok: bool
    how: str = ""
    result: str = ""
    reason: str = ""


def verify(
    records: Sequence[Tlsa], chain: Sequence[bytes], names: Sequence[str], now: datetime
) -> Verdict:
    """Judge the server's ``chain`` (leaf first, DER) against ``records`` (module docstring)."""
    usable = [record for record in records if record.usable]
    if not usable:
        return Verdict(False, result="tlsa-invalid", reason="no usable TLSA record")
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        return Verdict(False, result="certificate-not-trusted", reason="unreadable certificate")
    if not certificates:
        return Verdict(False, result="certificate-not-trusted", reason="no certificate")
    leaf = certificates[0]
    for record in usable:
        if record.usage == DANE_EE and record.matches(leaf):
            return Verdict(True, how=f"DANE-EE {record}")
    failure = Verdict(
        False, result="certificate-not-trusted", reason="no TLSA record matches the chain"
    )
    for record in usable:
        if record.usage != DANE_TA:
            continue
        for index, anchor in enumerate(certificates[1:], start=1):
            if record.matches(anchor):
                found = _chains_to(leaf, certificates[1:index], anchor, names, now)
                if found.ok:
                    return Verdict(True, how=f"DANE-TA {record}")
                failure = found
    return failure


def _chains_to(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchor: x509.Certificate,
    names: Sequence[str],
    now: datetime,
) -> Verdict:
    """The leaf, through ``intermediates``, is issued under ``anchor`` for one of ``names``."""
    store = verification.Store([anchor])
    reason = "no reference name given"
    for name in names:
        verifier = (
            verification.PolicyBuilder()
            .store(store)
            .time(now)
            .build_server_verifier(x509.DNSName(name))
        )
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as error:
            reason = escaped(str(error).split(" (encountered", 1)[0])  # not the certificate's words
            continue
        return Verdict(True)
    if "validation time" in reason or "expired" in reason:
        return Verdict(False, result="certificate-expired", reason=f"DANE-TA: {reason}")
    if "subjectaltname" in reason.lower():
        return Verdict(False, result="certificate-host-mismatch", reason=f"DANE-TA: {reason}")
    return Verdict(False, result="certificate-not-trusted", reason=f"DANE-TA: {reason}")


def peer_chain(ssl_object: ssl.SSLObject | None) -> list[bytes]:
    """The certificates the server sent, leaf first, DER (see the module docstring)."""
    if ssl_object is None:
        return []
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        leaf = ssl_object.getpeercert(binary_form=True)
        return [leaf] if leaf else []
    der = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
    return [c if isinstance(c, bytes) else c.public_bytes(der) for c in getter() or []]
