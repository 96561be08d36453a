"""Built-in filter ``sender``: the ``From:`` (and ``Sender:``) a user may write, like MAIL FROM.

Ingress lets an authenticated user use only its allowed envelope senders;
this filter holds the header to the same rule, so a user allowed
``user@example.org`` cannot send ``From: Director <director@bank.example>``.

Allowed addresses of a message sent with AUTH:

* with ``[filter.sender] users_file`` (the submission users file, the one
  ``postline user add`` writes: ``[users.NAME] senders = ["a@x", "@y"]``),
  the user's ``senders`` (addresses, or ``@domain`` for a whole domain);
  the file is re-read when it changes (``postline.files.stamp``); a file
  that stops parsing keeps the last good version; an unknown user has none;
* without it, the envelope sender alone (which ingress already checked).

Every address of every ``From:`` field (and of ``Sender:``, unless
``check_sender_header = false``) must be allowed; a message without a From:
address is refused too. Mail relayed without AUTH passes unless
``unauthenticated = true``, which checks it against its envelope sender.
Comparison: local part as written, domain case-insensitive (IDNA). A
mismatch answers ``verdict`` (reject with ``reply``, or discard); the reason
says which field, never the address.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from postline.files import Stamp, stamp
from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.sections import domain_name

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

log = logging.getLogger("postline.filter.sender")


def canonical(address: str) -> str | None:
    """``Local@Example.ORG`` -> ``local@example.org`` (as ingress stores senders); None if bad."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return None
    try:
        return f"{local.lower()}@{domain_name(domain)}"
    except (ValueError, UnicodeError):
        return None


class SendersFile:
    """``[users.NAME] senders`` of a users file, re-read when its stamp changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: Stamp = None
        self._senders: dict[str, frozenset[str]] = {}
        self.refresh()

    def senders(self, user: str) -> frozenset[str]:
        return self._senders.get(user, frozenset())

    def refresh(self) -> None:
        now = stamp(self.path)
        if now == self._stamp:
            return
        self._stamp = now
        try:
            with self.path.open("rb") as handle:
                document = tomllib.load(handle)
            users = document.get("users", {})
            self._senders = {
                str(name): frozenset(str(s).lower() for s in entry.get("senders", []))
                for name, entry in users.items()
                if isinstance(entry, dict)
            }
        except FileNotFoundError:
            self._senders = {}
        except (OSError, tomllib.TOMLDecodeError, AttributeError) as error:
            log.error("users file %s not reloaded, the last good one stays: %s", self.path, error)


class SenderFilter:
    """See the module docstring."""

    name = "sender"

    def __init__(self, settings: FilterSettings) -> None:
        self.section = settings.sender
        path = self.section.users_file
        self.users = SendersFile(path) if path is not None else None

    async def apply(self, message: FilterMessage) -> Decision:
        envelope = message.envelope
        if not envelope.auth_user and not self.section.unauthenticated:
            return Decision.proceed()
        if self.users is not None and envelope.auth_user:
            await asyncio.to_thread(self.users.refresh)
        allowed = self._allowed(envelope.auth_user, envelope.mail_from)
        fields = ["From", "Sender"] if self.section.check_sender_header else ["From"]
        for name in fields:
            values = message.headers.get_all(name)
            if name == "From" and not values:
                return self._refuse("no From: address")
            for _, address in email.utils.getaddresses(values):
                if not _is_allowed(canonical(address), allowed):
                    return self._refuse(f"a {name}: address the sender may not use")
        return Decision.proceed()

    def _allowed(self, user: str | None, mail_from: str) -> frozenset[str]:
        if user and self.users is not None:
            return self.users.senders(user)
        own = canonical(mail_from)
        return frozenset([own]) if own else frozenset()

    def _refuse(self, reason: str) -> Decision:
        if self.section.verdict == "discard":
            return Decision.discard(reason)
        return Decision.reject(reason, self.section.reply)


def _is_allowed(address: str | None, allowed: frozenset[str]) -> bool:
    if address is None:
        return False
    return address in allowed or f"@{address.rpartition('@')[2]}" in allowed
