"""Throw-away certificate authorities for TLS tests (MTA-STS, DANE), made with ``cryptography``.

``TestCa(directory)`` is a root CA (its certificate in ``ca_file``, for
``tls_ca_file``/``mta_sts_ca_file``); ``issue(name)`` makes a server
certificate for ``name`` (and 127.0.0.1) signed by it and returns an
``Issued``: the PEM files of the chain (leaf then CA) and of the key, for a
server's ``load_cert_chain``, plus the DER certificates for TLSA records.
``tlsa(usage, selector, mtype, certificate)`` writes the TLSA record text that
matches a certificate. Everything lives in a temporary directory.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A server certificate: PEM files (chain, key) and DER certificates (leaf, CA)."""

    chain_file: Path
    key_file: Path
    leaf: bytes
    ca: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCa:
    """A root CA in ``directory`` (module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "Postline Test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 2 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, expired: bool = False) -> Issued:
        """A server certificate for ``name`` signed by this CA (``expired``: already past)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 3 * _DAY, now - _DAY) if expired else (now - _DAY, now + 2 * _DAY)
        san = x509.SubjectAlternativeName(
            [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        ca_key = self.certificate.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / name.replace("*", "_")
        chain_file, key_file = stem.with_suffix(".chain.pem"), stem.with_suffix(".key.pem")
        pem = serialization.Encoding.PEM
        chain_file.write_bytes(leaf.public_bytes(pem) + self.certificate.public_bytes(pem))
        key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        der = serialization.Encoding.DER
        return Issued(
            chain_file, key_file, leaf.public_bytes(der), self.certificate.public_bytes(der)
        )


def tlsa(usage: int, selector: int, mtype: int, certificate_der: bytes) -> str:
    """The TLSA record text (``"3 1 1 ab..."``) that matches ``certificate_der``."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    content = certificate_der
    if selector == 1:
        content = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if mtype == 1:
        content = hashlib.sha256(content).digest()
    elif mtype == 2:
        content = hashlib.sha512(content).digest()
    return f"{usage} {selector} {mtype} {content.hex()}"
