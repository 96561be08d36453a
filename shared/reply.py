"""SMTP replies as values.

``SmtpReply`` is what every stage speaks: ingress returns its text to the
client, delivery builds one from whatever the remote (or the network, or DNS)
did, and events carry it to the audit trails. The predicates classify a
reply by its first digit: 2xx success, 3xx intermediate (``354`` after DATA,
``334`` during AUTH: never success), 4xx transient, 5xx permanent;
``is_consistent`` says whether an enhanced code (RFC 3463) has the same class
as the reply (``550 2.0.0`` does not). What a reply *means* at a given step of a
dialogue is for the service to decide (delivery decides it in its ``trouble`` module).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


class SmtpReply(BaseModel):
    """One SMTP reply: ``code`` (200-599), optional RFC 3463 ``enhanced`` code, ``text``."""

    model_config = ConfigDict(frozen=True)

    code: int = Field(ge=200, le=599)
    enhanced: str | None = None
    text: str = ""

    @classmethod
    def parse(cls, code: int, message: str) -> SmtpReply:
        """Split a remote reply's text into enhanced code and the rest (lines joined by ``/``)."""
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        enhanced: str | None = None
        if lines and (match := _ENHANCED.match(lines[0])):
            enhanced = ".".join(match.groups())
            lines = [
                _ENHANCED.sub("", line, count=1) if _ENHANCED.match(line) else line
                for line in lines
            ]
        return cls(code=code, enhanced=enhanced, text=" / ".join(lines))

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    @property
    def is_consistent(self) -> bool:
        """No enhanced code, or one of the reply's own class (``2.x.x`` only with 2xx, ...)."""
        return self.enhanced is None or self.enhanced[0] == str(self.code)[0]

    def __str__(self) -> str:
        """The reply line as sent to an SMTP client (without CRLF)."""
        parts = [str(self.code)]
        if self.enhanced:
            parts.append(self.enhanced)
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


class ReplyError(Exception):
    """An error that stands for an SMTP reply: the one exception that carries one.

    Services subclass it to say what kind of trouble it is (a line that is no
    command, a timeout, no route, an unusable host); the reply is ``reply``.
    """

    def __init__(self, reply: SmtpReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def reply(code: int, enhanced: str, text: str) -> SmtpReply:
    """Shorthand constructor for the reply constants of each service."""
    return SmtpReply(code=code, enhanced=enhanced, text=text)
