"""The ``[filter.clamav]`` and ``[filter.rspamd]`` tables (pure pydantic, no I/O).

Both scanners have a ``timeout`` (connect, send, answer: together) and
``on_error``: ``"defer"`` (fail closed: the message waits in a retry tier and
is scanned again) or ``"accept"`` (fail open: it goes on unscanned, counted in
``postline_filter_scanner_errors_total``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from postline.filter.sections import Block, DeferralReply, RefusalReply, Table, parse_reply
from postline.values import Duration, HostPort, Listen, Size

OnError = Literal["defer", "accept"]
RspamdVerdict = Literal["continue", "reject", "defer", "discard"]


class ClamavSettings(Table):
    """Virus scanning with clamd (INSTREAM over TCP or a Unix socket)."""

    address: Listen | None = Field(
        default=None, description="clamd's TCP address, host:port (clamd.conf TCPSocket)."
    )
    socket: Path | None = Field(
        default=None, description="clamd's Unix socket (clamd.conf LocalSocket)."
    )
    timeout: Duration = Field(default=30.0, description="Longest one scan may take.")
    on_error: OnError = Field(default="defer", description="clamd unreachable or failing.")
    chunk_size: Size = Field(default=64 * 1024, le=16 * 1024 * 1024, description="INSTREAM chunk.")
    max_size: Size = Field(
        default=25 * 1024 * 1024,
        description="Messages larger than this are not sent (clamd's StreamMaxLength); they "
        "are handled as on_error says.",
    )
    verdict: Block = Field(default="reject", description="What a found virus decides.")
    reply: RefusalReply = Field(
        default=parse_reply("554 5.7.1 Message contains a virus"),
        description="Reply of a rejection.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> ClamavSettings:
        if self.socket is not None and self.address is not None:
            raise ValueError("set address or socket, not both")
        return self

    @property
    def target(self) -> HostPort | Path:
        if self.socket is not None:
            return self.socket
        return self.address or HostPort("127.0.0.1", 3310)


DEFAULT_ACTIONS: dict[str, RspamdVerdict] = {
    "no action": "continue",
    "greylist": "continue",
    "add header": "continue",
    "rewrite subject": "continue",
    "soft reject": "defer",
    "reject": "reject",
}


class RspamdSettings(Table):
    """Spam scanning with rspamd (HTTP /checkv2)."""

    url: str = Field(
        default="http://127.0.0.1:11333/checkv2",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The normal worker's /checkv2 URL.",
    )
    password: str | None = Field(default=None, description="Sent as the Password header.")
    timeout: Duration = Field(default=30.0, description="Longest one check may take.")
    on_error: OnError = Field(default="defer", description="rspamd unreachable or failing.")
    actions: dict[str, RspamdVerdict] = Field(
        default_factory=lambda: dict(DEFAULT_ACTIONS),
        description="rspamd action -> verdict (continue, reject, defer, discard); actions "
        "not listed continue.",
    )
    add_headers: bool = Field(
        default=True, description="Add the headers rspamd asks for (milter.add_headers)."
    )
    rewrite_subject: bool = Field(
        default=False, description="Apply 'rewrite subject' (changes Subject: run before dkim)."
    )
    reject_reply: RefusalReply = Field(
        default=parse_reply("554 5.7.1 Message rejected as spam"),
        description="Reply of a rejection.",
    )
    defer_reply: DeferralReply = Field(
        default=parse_reply("451 4.7.1 Message deferred by the spam filter"),
        description="Reply of a deferral.",
    )
