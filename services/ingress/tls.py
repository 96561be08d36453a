"""The server TLS context, TLS 1.2 or later, kept current with its certificate files.

``TlsContext.context`` is read at every handshake (STARTTLS and implicit TLS
both upgrade inside the SMTP protocol), so replacing it is all a reload needs:
sessions already encrypted keep their keys, new handshakes use the new
certificate. ``watch`` polls the certificate and key files (mtime, size, inode)
every ``interval`` seconds, as cert-manager rotates them; a pair that does not
load (half-written, mismatched) is logged and the previous context stays.

The served certificate's expiry (its ``notAfter``) is exported as
``postline_ingress_tls_certificate_expiry_timestamp_seconds`` whenever a
context is built, so an alert sees a renewal that never arrives.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from cryptography import x509

from postline.files import stamps
from postline.ingress import metrics

log = logging.getLogger("postline.ingress.tls")


def build_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for ``cert``/``key``: TLS 1.2+, no client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert, key)
    return context


def expiry(cert: Path) -> float | None:
    """The ``notAfter`` of the first certificate in ``cert`` (Unix time); None if unreadable."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as error:
        log.warning("cannot read the certificate's expiry: %s", error)
        return None
    return loaded.not_valid_after_utc.timestamp()


def _export_expiry(cert: Path) -> None:
    when = expiry(cert)
    if when is not None:
        metrics.TLS_CERTIFICATE_EXPIRY.set(when)


class TlsContext:
    """The current server context for one certificate/key pair."""

    def __init__(self, cert: Path, key: Path, interval: float) -> None:
        self._cert = cert
        self._key = key
        self._interval = interval
        self._stamp = stamps(cert, key)
        self.context = build_context(cert, key)
        _export_expiry(cert)

    async def watch(self) -> None:
        """Reload on change, forever (run as a task; cancel to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reload_if_changed()
            except Exception:
                log.exception("certificate check failed")

    async def reload_if_changed(self) -> bool:
        """Build a new context if the files changed; True if the new one is in use."""
        stamp = await asyncio.to_thread(stamps, self._cert, self._key)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            context = await asyncio.to_thread(build_context, self._cert, self._key)
        except (OSError, ssl.SSLError) as error:
            metrics.TLS_RELOADS.labels("failed").inc()
            log.error("new certificate not loaded, keeping the previous one: %s", error)
            return False
        self.context = context
        await asyncio.to_thread(_export_expiry, self._cert)
        metrics.TLS_RELOADS.labels("ok").inc()
        log.info("certificate reloaded", extra={"cert": str(self._cert)})
        return True
