"""The submission users file: it parses, and every password hash is a valid argon2 hash.

Uses ingress's own reader (``postline.ingress.users.load_users``: the format,
the senders), then checks each hash's parameters with argon2 (a truncated or
edited hash fails there or in its base64, while ``load_users`` only checks the prefix). A file
readable by every local user is a ``WARN`` (hashes can be attacked offline);
no users at all is a ``WARN`` (nobody can authenticate). Nothing is printed
from the file but user names, escaped.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError

from postline.app.doctor.files import problem
from postline.app.doctor.report import Check, escape, failed, passed, warned
from postline.ingress.users import load_users

USERS = "users file"


def valid_hash(encoded: str) -> bool:
    """True for a well-formed argon2 PHC string: parameters, salt and hash that decode."""
    try:
        extract_parameters(encoded)
        salt, digest = encoded.split("$")[-2:]
        for part in (salt, digest):
            base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
    except (InvalidHashError, ValueError, binascii.Error):
        return False
    return len(digest) >= 16 and len(salt) >= 11


def users_checks(path: Path | None) -> list[Check]:
    """The ``users file`` line of ``[ingress] users_file`` (none when it is not set)."""
    if path is None or problem(path) is not None:
        return []  # not configured, or the files check already failed it
    try:
        users = load_users(path)
    except (OSError, ValueError) as error:
        advice = "fix the file (postline user add rewrites an entry)"
        return [failed(USERS, escape(error), advice)]
    bad = []
    for name, user in users.items():
        if not valid_hash(user.password_hash):
            bad.append(escape(name, 60))
    if bad:
        found = f"{path}: invalid password hash for {', '.join(bad)}"
        advice = "set a new password with postline user add NAME --users-file FILE"
        return [failed(USERS, found, advice)]
    if not users:
        return [warned(USERS, f"{path} has no users", "add one with postline user add")]
    if path.stat().st_mode & 0o004:
        found = f"{path}: {len(users)} users, file readable by everyone"
        return [warned(USERS, found, f"chmod 600 {path}")]
    return [passed(USERS, f"{path}: {len(users)} users, every hash valid")]
