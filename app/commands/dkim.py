"""``postline dkim keygen DOMAIN --selector S [--algorithm rsa|ed25519] [--bits N] --out FILE``.

Writes a new private key (PEM, PKCS#8) to ``FILE`` with mode 0600 (never
over an existing file: a key in use must be rotated on purpose, under a new
selector) and prints the DNS TXT record to publish, as one zone-file line::

    s2026._domainkey.example.org. 3600 IN TXT "v=DKIM1; k=rsa; p=MIIBIjAN..." "..."

(strings of at most 255 characters, RFC 1035). RSA keys have 2048 bits
unless ``--bits`` asks for more; Ed25519 keys (RFC 8463) have no size. The
key then goes into ``[[filter.dkim.keys]]`` with the same domain and
selector. Needs no configuration file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from postline.app.commands.common import OperationError, UsageError


def register(commands: Any) -> None:
    dkim = commands.add_parser("dkim", help="DKIM signing keys")
    actions = dkim.add_subparsers(dest="dkim_command", required=True, metavar="ACTION")
    keygen = actions.add_parser("keygen", help="make a key and print its DNS TXT record")
    keygen.add_argument("domain")
    keygen.add_argument("--selector", required=True)
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa")
    keygen.add_argument("--bits", type=int, default=2048, help="RSA only (at least 2048)")
    keygen.add_argument("--out", type=Path, required=True, help="the private key file (0600)")
    keygen.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from postline.filter.dkim_keys import MIN_RSA_BITS, generate, zone_line
    from postline.filter.sections import DkimKeySettings

    try:
        entry = DkimKeySettings(domain=args.domain, selector=args.selector, key_file=args.out)
    except ValidationError as error:
        problem = error.errors()[0]
        raise UsageError(f"dkim keygen: {problem['loc'][0]}: {problem['msg']}") from None
    if args.algorithm == "rsa" and args.bits < MIN_RSA_BITS:
        raise UsageError(f"dkim keygen: --bits {args.bits}: RSA keys have at least {MIN_RSA_BITS}")
    pem, record = generate(args.algorithm, args.bits)
    _write_private(entry.key_file, pem)
    print(zone_line(entry.domain, entry.selector, record))
    return 0


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into a new file ``path``, mode 0600, flushed to disk."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OperationError(f"dkim keygen: {path} exists; choose another --out") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
