"""Who may read the audit API and the console: bearer tokens and console sessions.

``TokenStore`` reads ``[audit] api_tokens_file``: one token per line, either
``name:token`` or the token alone (named ``line N``); blank lines and lines
starting with ``#`` are skipped; a token shorter than ``MIN_TOKEN_LENGTH`` is
ignored and logged by its line number. The file is re-read whenever its stamp
(mtime, size, inode) changes, so a rotated Kubernetes Secret takes effect
without a restart; a file that cannot be read keeps the previous tokens, a
missing one means no token is valid. ``check`` compares the SHA-256 digests of
the presented token and of every known token with ``hmac.compare_digest``,
all of them every time, so neither the answer time nor a length gives a token
away. Tokens are never logged, not even in part.

``Sessions`` are the console's logins: a random value (the cookie) mapped on
the server to the token's name and digest, for ``SESSION_LIFETIME`` seconds;
a session dies with its token (removed from the file) or on logout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from postline.files import Stamp, stamp

log = logging.getLogger("postline.audit.auth")

MIN_TOKEN_LENGTH = 16
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Token:
    """A known token: who it is for, and its SHA-256 digest (the token itself is not kept)."""

    name: str
    digest: bytes


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_tokens(text: str) -> tuple[list[Token], list[str]]:
    """The tokens of a tokens file, and one problem per unusable line (never the token)."""
    tokens: list[Token] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.partition(":")
        if not colon:
            name, token = f"line {number}", line
        name, token = name.strip() or f"line {number}", token.strip()
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(
                f"line {number}: token shorter than {MIN_TOKEN_LENGTH} characters, ignored"
            )
            continue
        tokens.append(Token(name, digest(token)))
    return tokens, problems


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class TokenStore:
    """The tokens of ``path`` (None: authentication is off), re-read when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._tokens: list[Token] = []
        self._stamp: Stamp = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self._path is not None

    async def check(self, presented: str) -> Token | None:
        """The token ``presented`` stands for, or None; constant time over all tokens."""
        await self.refresh()
        return self.match(digest(presented))

    def match(self, wanted: bytes) -> Token | None:
        found: Token | None = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, wanted) and found is None:
                found = token
        return found

    async def refresh(self) -> None:
        """Re-read the file if its stamp changed since the last look."""
        if self._path is None:
            return
        async with self._lock:
            try:
                current = await asyncio.to_thread(stamp, self._path)
            except OSError as error:
                log.error("tokens file not readable, keeping the previous tokens: %s", error)
                return
            if current == self._stamp:
                return
            self._stamp = current
            if current is None:
                log.warning("tokens file %s is missing: no token is valid", self._path)
                self._tokens = []
                return
            await self._load(self._path)

    async def _load(self, path: Path) -> None:
        try:
            text = await asyncio.to_thread(path.read_text, "utf-8", "surrogateescape")
        except OSError as error:
            log.error("tokens file not re-read, keeping the previous tokens: %s", error)
            return
        self._tokens, problems = parse_tokens(text)
        for problem in problems:
            log.error("tokens file %s %s", path, problem)
        log.info("tokens file loaded", extra={"tokens": len(self._tokens)})


@dataclass(frozen=True)
class Session:
    token: Token
    expires: float


class Sessions:
    """Console logins: random cookie values -> the token they were opened with."""

    def __init__(self, lifetime: float = SESSION_LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._open: OrderedDict[bytes, Session] = OrderedDict()  # keyed by digest of the value

    def open(self, token: Token) -> str:
        """A new session for ``token``: the cookie value (the oldest ones go past ``limit``)."""
        value = secrets.token_urlsafe(32)
        self._open[digest(value)] = Session(token, time.monotonic() + self._lifetime)
        while len(self._open) > self._limit:
            self._open.popitem(last=False)
        return value

    def get(self, value: str, tokens: TokenStore) -> Token | None:
        """The token behind session ``value``, if it is open, fresh and its token still valid."""
        key = digest(value)
        session = self._open.get(key)
        if session is None:
            return None
        if session.expires < time.monotonic() or tokens.match(session.token.digest) is None:
            del self._open[key]
            return None
        return session.token

    def close(self, value: str) -> None:
        self._open.pop(digest(value), None)
