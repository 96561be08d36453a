"""Submission users: the TOML ``users_file``, ``add_user`` and a live-reloading store.

The file (``postline user add`` writes it; operators may edit it)::

    [users.alice]
    password = "$argon2id$v=19$m=65536,t=3,p=4$..."   # argon2 hash, never plaintext
    senders = ["alice@example.org", "@example.net"]    # addresses or @domain

``add_user`` creates or updates one user and replaces the file atomically
(temporary file in the same directory, fsync, rename) with mode 0600.

``UserStore`` re-reads the file whenever its mtime, size or inode changes, so
edits and rotations take effect without a restart. A file that stops parsing
keeps the last good version in force (and is logged); a missing file means no
users. ``PasswordChecker`` verifies passwords in a worker thread (argon2 is
deliberately slow) and spends the same effort on unknown users.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from postline.files import Stamp
from postline.files import stamp as stamp_of
from postline.ingress.address import AddressError, Mailbox, parse_domain, parse_mailbox

log = logging.getLogger("postline.ingress.users")
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")


@dataclass(frozen=True)
class User:
    """One user: name, argon2 hash and allowed envelope senders (canonical, lower case)."""

    name: str
    password_hash: str
    senders: frozenset[str]

    def may_send_as(self, mailbox: Mailbox | None) -> bool:
        """True if ``mailbox`` is listed, or its ``@domain`` is; the null sender never is."""
        if mailbox is None:
            return False
        return str(mailbox).lower() in self.senders or f"@{mailbox.domain}" in self.senders


def normalise_sender(text: str) -> str:
    """``alice@Example.ORG`` -> ``alice@example.org``; ``@Example.net`` -> ``@example.net``."""
    try:
        if text.startswith("@"):
            return "@" + parse_domain(text[1:])
        return str(parse_mailbox(text)).lower()
    except AddressError as error:
        raise ValueError(f"sender {text!r} is not an address or @domain: {error}") from None


def add_user(path: Path, name: str, password: str, senders: list[str]) -> None:
    """Create or update ``name``; ``senders`` replaces the list (kept when empty on update)."""
    if not _NAME.match(name):
        raise ValueError("a user name is 1-256 characters without spaces or control characters")
    if not password:
        raise ValueError("the password is empty")
    wanted = sorted({normalise_sender(sender) for sender in senders})
    document = _read_document(path) if path.exists() else {}
    users = document.setdefault("users", {})
    if not isinstance(users, dict):
        raise ValueError(f"{path}: 'users' is not a table")
    existing = users.get(name, {})
    if not wanted and not existing:
        raise ValueError("a new user needs at least one --sender")
    users[name] = {
        "password": PasswordHasher().hash(password),
        "senders": wanted or list(existing.get("senders", [])),
    }
    _write_atomically(path, tomli_w.dumps(document).encode())


def load_users(path: Path) -> dict[str, User]:
    """Parse the users file; ``ValueError`` naming the problem if it is invalid."""
    users = _read_document(path).get("users", {})
    if not isinstance(users, dict):
        raise ValueError(f"{path}: 'users' is not a table")
    loaded: dict[str, User] = {}
    for name, entry in users.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
            raise ValueError(f"{path}: user {name!r} has no password hash")
        if not entry["password"].startswith("$argon2"):
            raise ValueError(f"{path}: user {name!r}: password is not an argon2 hash")
        raw = entry.get("senders", [])
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ValueError(f"{path}: user {name!r}: senders must be a list of strings")
        senders = frozenset(normalise_sender(item) for item in raw)
        loaded[name] = User(name, entry["password"], senders)
    return loaded


class UserStore:
    """The users of ``path``, re-read when the file changes (see module docstring)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._users: dict[str, User] = {}
        self._stamp: Stamp = None
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> User | None:
        await self.refresh()
        return self._users.get(name)

    async def refresh(self) -> None:
        """Reload if the file's mtime, size or inode changed since the last look."""
        if self._path is None:
            return
        async with self._lock:
            try:
                stamp = await asyncio.to_thread(stamp_of, self._path)
            except OSError as error:
                log.error("users file not readable, keeping the previous users: %s", error)
                return
            if stamp == self._stamp:
                return
            self._stamp = stamp
            if stamp is None:
                log.warning("users file is missing: no user can authenticate")
                self._users = {}
                return
            try:
                self._users = await asyncio.to_thread(load_users, self._path)
            except (OSError, ValueError) as error:
                log.error("users file not reloaded, keeping the previous users: %s", error)
                return
            log.info("users file loaded", extra={"users": len(self._users)})


class PasswordChecker:
    """Verifies argon2 hashes off the event loop, a few at a time."""

    def __init__(self, parallel: int = 4) -> None:
        self._hasher = PasswordHasher()
        self._slots = asyncio.Semaphore(parallel)
        self._dummy: str | None = None

    async def verify(self, user: User | None, password: str) -> bool:
        """True if ``password`` matches; an unknown user costs as much as a known one."""
        async with self._slots:
            if user is None:
                if self._dummy is None:
                    self._dummy = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
                await asyncio.to_thread(self._check, self._dummy, password)
                return False
            return await asyncio.to_thread(self._check, user.password_hash, password)

    def _check(self, hashed: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(hashed, password))
        except (VerificationError, InvalidHashError):
            return False


def _read_document(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None


def _write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
