"""Throw-away TLS material for tests (never committed: made in a temporary directory).

``make_cert`` makes a self-signed server certificate; ``client_tls`` is a client
context that accepts such certificates (for the TLS clients of tests).
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path


def make_cert(directory: Path, name: str = "mx.test", days: int = 2) -> tuple[Path, Path]:
    """A fresh self-signed EC certificate and key for ``name`` (and 127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def client_tls() -> ssl.SSLContext:
    """A client context that accepts the tests' self-signed certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
