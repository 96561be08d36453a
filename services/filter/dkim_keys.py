"""DKIM keys: reading key files, generating keys, and the DNS TXT record of a key.

A key file holds one private key: PEM (PKCS#1 or PKCS#8) RSA of at least
``MIN_RSA_BITS`` bits, PEM (PKCS#8) Ed25519 (RFC 8463), or dkimpy's own
Ed25519 form (the base64 32-byte seed, what ``dknewkey`` writes). ``load_key``
returns a ``SigningKey`` carrying what dkimpy signs with (PKCS#1 PEM, or the
base64 seed) and the public half as a TXT record (``v=DKIM1; k=rsa; p=...``).
Parsing uses ``cryptography`` (OpenSSL); signing is dkimpy's.

``KeyRing`` holds the configured keys by signing domain and re-reads a file
when its stamp (``postline.files.stamp``) changes, at most every
``reload_interval`` seconds: a rotated Kubernetes Secret takes effect without a
restart. A file that stops parsing keeps the previous key in force (logged and
counted in ``postline_filter_dkim_key_loads_total{result="error"}``).

``generate`` makes a new key (``postline dkim keygen``) and ``zone_line``
renders the TXT record for a zone file, split into strings of at most 255
characters (RFC 1035: a TXT character-string is at most 255 octets).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postline.files import Stamp, stamp
from postline.filter import metrics
from postline.filter.sections import DkimKeySettings

log = logging.getLogger("postline.filter.dkim")
MIN_RSA_BITS = 2048
Algorithm = Literal["rsa", "ed25519"]


@dataclass(frozen=True)
class SigningKey:
    """One loaded key: where it signs, its dkimpy algorithm and private form, its record."""

    domain: str
    selector: str
    algorithm: Algorithm
    private: bytes
    record: str

    @property
    def signature_algorithm(self) -> bytes:
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"


def parse_key(data: bytes) -> tuple[Algorithm, bytes, str]:
    """(algorithm, dkimpy's private form, TXT record) of a key file's bytes; ``ValueError``."""
    text = data.strip()
    if not text.startswith(b"-----BEGIN"):
        return _seed_key(text)
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a PEM private key without a passphrase ({error})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
        return "rsa", _pkcs1(key), record_of(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", _seed_of(key), record_of(key)
    raise ValueError(f"a {type(key).__name__}: DKIM signs with RSA or Ed25519")


def _seed_key(text: bytes) -> tuple[Algorithm, bytes, str]:
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise ValueError("neither PEM nor a base64 Ed25519 seed of 32 bytes")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return "ed25519", text, record_of(key)


def _pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _seed_of(key: ed25519.Ed25519PrivateKey) -> bytes:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


def record_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The DNS TXT record publishing ``key``'s public half (RFC 6376 3.6.1, RFC 8463)."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def generate(algorithm: Algorithm, bits: int = MIN_RSA_BITS) -> tuple[bytes, str]:
    """A new private key as PEM (PKCS#8) and its TXT record."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        if bits < MIN_RSA_BITS:
            raise ValueError(f"--bits {bits}: at least {MIN_RSA_BITS}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, record_of(key)


def zone_line(domain: str, selector: str, record: str, ttl: int = 3600) -> str:
    """``<selector>._domainkey.<domain>. TTL IN TXT "..." "..."`` (strings of <= 255)."""
    chunks = [record[i : i + 255] for i in range(0, len(record), 255)]
    strings = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{selector}._domainkey.{domain}. {ttl} IN TXT {strings}"


def load_key(settings: DkimKeySettings) -> SigningKey:
    """The key of one ``[[filter.dkim.keys]]`` entry; ``ValueError`` naming the file."""
    try:
        data = settings.key_file.read_bytes()
    except OSError as error:
        raise ValueError(f"key_file {settings.key_file}: {error.strerror or error}") from None
    try:
        algorithm, private, record = parse_key(data)
    except ValueError as error:
        raise ValueError(f"key_file {settings.key_file}: {error}") from None
    return SigningKey(settings.domain, settings.selector, algorithm, private, record)


class KeyRing:
    """The configured keys by domain, reloaded when their files change (module docstring)."""

    def __init__(self, entries: Sequence[DkimKeySettings], reload_interval: float) -> None:
        self.entries = tuple(entries)
        self.reload_interval = reload_interval
        self._keys = [load_key(entry) for entry in self.entries]
        self._stamps: list[Stamp] = [stamp(entry.key_file) for entry in self.entries]
        self._checked = time.monotonic()

    def for_domain(self, domain: str) -> list[SigningKey]:
        return [key for key in self._keys if key.domain == domain]

    def domains(self) -> set[str]:
        return {key.domain for key in self._keys}

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.reload_interval

    def refresh(self) -> None:
        """Re-read every key file whose stamp changed (blocking: call it off the loop)."""
        self._checked = time.monotonic()
        for index, entry in enumerate(self.entries):
            now = stamp(entry.key_file)
            if now == self._stamps[index]:
                continue
            self._stamps[index] = now
            try:
                self._keys[index] = load_key(entry)
            except ValueError as error:
                metrics.DKIM_KEY_LOADS.labels("error").inc()
                log.error("DKIM key not reloaded, the previous one stays: %s", error)
                continue
            metrics.DKIM_KEY_LOADS.labels("ok").inc()
            log.info("DKIM key for %s (selector %s) reloaded", entry.domain, entry.selector)


def domain_key_matches(key: SigningKey, tags: dict[str, str]) -> bool:
    """Whether a published record's tags (``v``, ``k``, ``p``) are ``key``'s public half."""
    published = dict(part.split("=", 1) for part in key.record.split("; "))
    if tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa") != published["k"]:
        return False
    return "".join(tags.get("p", "").split()) == published["p"]
