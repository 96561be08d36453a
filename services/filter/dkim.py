"""Built-in filter ``dkim``: DKIM-signs the message with dkimpy (RSA and Ed25519, RFC 8463).

The signing domain is the ``From:`` header's domain (every address of the
field must share it), or its nearest parent domain with a key when
``[filter.dkim] subdomains = true``. Each configured key of that domain adds
one ``DKIM-Signature`` on top of the header block: an RSA and an Ed25519 key
of one domain sign the message twice (dual signing; a receiver that does not
know Ed25519 still checks the RSA one). No key (or no single From: domain):
the message passes unsigned, counted in
``postline_filter_dkim_messages_total{result="unsigned"}``.

Signed fields are ``[filter.dkim] headers`` that the message has (each as
often as it appears), plus ``oversign`` fields once more than they appear,
so that nobody can add one later without breaking the signature (From by
default). Canonicalisation is ``relaxed/relaxed`` unless configured.

Once signed, the message is sealed (``FilterMessage.seal``): a later filter
that tries to change the body or existing fields raises; the registry
already refuses a chain with a rewriting filter after ``dkim``. Signing
(hashing the body; dkimpy's RSA is pure Python, tens of ms) runs in the
filter's worker threads. Keys are re-read when their files change
(``postline.filter.dkim_keys.KeyRing``). Always answers ``CONTINUE``.

``published_key_matches`` tells a caller (``postline doctor``) whether a TXT
record found at ``<selector>._domainkey.<domain>`` publishes the public half
of the configured key of that domain and selector.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dkim as dkimpy

from postline.filter import metrics
from postline.filter.api import Decision
from postline.filter.dkim_keys import KeyRing, SigningKey, domain_key_matches, load_key
from postline.filter.message import FilterMessage
from postline.filter.offload import in_pool
from postline.filter.sections import DkimKeySettings, domain_name

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

SIGNATURE = "DKIM-Signature"


class DkimFilter:
    """Signs with every key of the From: domain (module docstring)."""

    name = "dkim"

    def __init__(self, settings: FilterSettings) -> None:
        section = settings.dkim
        if not section.keys:
            raise ValueError("no keys: add [[filter.dkim.keys]] with domain, selector, key_file")
        refused = {h.lower() for h in section.headers} & {
            h.decode().lower() for h in dkimpy.DKIM.SHOULD_NOT
        }
        if refused:
            raise ValueError(f"headers: {', '.join(sorted(refused))} must not be signed")
        self.keys = KeyRing(section.keys, section.reload_interval)
        self.headers = [h.lower() for h in section.headers]
        self.oversign = {h.lower() for h in section.oversign}
        header_c, body_c = section.canonicalization.split("/")
        self.canonicalize = (header_c.encode(), body_c.encode())
        self.subdomains = section.subdomains

    async def apply(self, message: FilterMessage) -> Decision:
        if self.keys.due():
            await asyncio.to_thread(self.keys.refresh)
        domain = from_domain(message.headers.get_all("From"))
        keys = self._keys_for(domain) if domain else []
        if not keys:
            metrics.DKIM_MESSAGES.labels("unsigned").inc()
            return Decision.proceed("unsigned: no key for the From: domain")
        data = message.to_bytes()
        include = self._include(message)
        signatures = await in_pool(lambda: self._sign(data, keys, include))
        for signature in reversed(signatures):
            message.headers.prepend(SIGNATURE, signature)
        message.seal(self.name)
        metrics.DKIM_MESSAGES.labels("signed").inc()
        names = ", ".join(f"{k.algorithm} d={k.domain} s={k.selector}" for k in keys)
        return Decision.proceed(f"signed {names}")

    def _keys_for(self, domain: str) -> list[SigningKey]:
        labels = domain.split(".")
        candidates = [domain]
        if self.subdomains:
            candidates += [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
        for candidate in candidates:
            keys = self.keys.for_domain(candidate)
            if keys:
                return keys
        return []

    def _include(self, message: FilterMessage) -> list[bytes]:
        """The h= list: configured fields as often as present, oversigned ones once more."""
        include: list[bytes] = []
        for name in self.headers:
            count = len(message.headers.get_all(name)) + (name in self.oversign)
            include += [name.encode()] * count
        return include

    def _sign(self, data: bytes, keys: Sequence[SigningKey], include: list[bytes]) -> list[str]:
        """One ``DKIM-Signature`` value per key (dkimpy; blocking)."""
        values = []
        for key in keys:
            signer = dkimpy.DKIM(data, linesep=b"\r\n")
            field = signer.sign(
                key.selector.encode(),
                key.domain.encode(),
                key.private,
                signature_algorithm=key.signature_algorithm,
                canonicalize=self.canonicalize,
                include_headers=include,
            )
            value = field.partition(b":")[2].removeprefix(b" ").rstrip(b"\r\n")
            values.append(value.decode("ascii"))
        return values


def from_domain(values: Sequence[str]) -> str | None:
    """The one domain of every address in the From: field(s), lower case; else ``None``."""
    domains = set()
    for _, address in email.utils.getaddresses(list(values)):
        _, at, domain = address.rpartition("@")
        if not at or not domain:
            return None
        try:
            domains.add(domain_name(domain))
        except (ValueError, UnicodeError):
            return None
    return domains.pop() if len(domains) == 1 else None


def published_key_matches(
    domain: str, selector: str, txt: str | bytes, keys: Sequence[DkimKeySettings]
) -> bool:
    """Whether ``txt`` (the record at ``<selector>._domainkey.<domain>``, its strings joined)
    publishes the public half of the configured key for ``domain`` and ``selector``.

    False when no such key is configured, its file does not load, or the record is
    malformed or names another key.
    """
    wanted = (domain_name(domain), selector.lower())
    entry = next((k for k in keys if (k.domain, k.selector.lower()) == wanted), None)
    if entry is None:
        return False
    try:
        key = load_key(entry)
    except ValueError:
        return False
    text = txt.decode("ascii", "replace") if isinstance(txt, bytes) else txt
    try:
        tags = {
            name.strip(): value.strip()
            for name, _, value in (part.partition("=") for part in text.split(";") if part.strip())
        }
    except ValueError:
        return False
    return domain_key_matches(key, tags)
